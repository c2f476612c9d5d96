import Glibc

/// `host:port` or `[v6]:port`.
public struct HostPort: Sendable, Equatable, CustomStringConvertible {
  public var host: String
  public var port: Int
  public init(host: String, port: Int) {
    self.host = host
    self.port = port
  }

  public static func parse(_ text: String) -> HostPort? {
    var host: Substring
    var portText: Substring
    if text.hasPrefix("[") {
      guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
      host = text[text.index(after: text.startIndex)..<close]
      portText = text[text.index(close, offsetBy: 2)...]
    } else {
      guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
      host = text[..<colon]
      portText = text[text.index(after: colon)...]
    }
    guard !host.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText), (0...65535).contains(port)
    else { return nil }
    return HostPort(host: String(host), port: port)
  }

  public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

  /// Loopback-only addresses (a warning is due for anything else).
  public var isLoopback: Bool { host == "localhost" || host.hasPrefix("127.") || host == "::1" }
}

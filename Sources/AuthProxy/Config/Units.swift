import Glibc

/// Parses the units of SPEC §2: durations `500ms`, `30s`, `5m`, `1h` and sizes `512KiB`, `10MiB`.
public enum Units {
  /// Seconds, or nil when `text` is not a duration. A bare number is seconds.
  public static func duration(_ text: String) -> Double? {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
    for (suffix, scale) in units where text.hasSuffix(suffix) {
      let number = text.dropLast(suffix.count)
      guard let value = Double(number), value >= 0, value.isFinite, !number.hasPrefix("+") else { return nil }
      return value * scale
    }
    guard let value = Double(text), value >= 0, value.isFinite, !text.hasPrefix("+") else { return nil }
    return value
  }

  /// Bytes, or nil when `text` is not a size. A bare number is bytes.
  public static func size(_ text: String) -> Int? {
    let units: [(String, Int)] = [
      ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000),
      ("B", 1),
    ]
    guard text.first?.isASCII == true, text.first?.isNumber == true else { return nil }
    for (suffix, scale) in units where text.hasSuffix(suffix) {
      guard let value = Int(text.dropLast(suffix.count)), value >= 0 else { return nil }
      let (product, overflow) = value.multipliedReportingOverflow(by: scale)
      return overflow ? nil : product
    }
    guard let value = Int(text), value >= 0 else { return nil }
    return value
  }
}

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

/// The upstream's base URL, split once at start-up.
public struct UpstreamURL: Sendable, Equatable, CustomStringConvertible {
  /// `https://host:port`, no trailing slash.
  public var origin: String
  /// A path prefix to put before every forwarded path ("" or "/prefix").
  public var basePath: String
  public var host: String

  /// Accepts only `https://host[:port][/prefix]`, no user info, query or fragment.
  public static func parse(_ text: String) -> Result<UpstreamURL, ConfigProblem> {
    guard text.lowercased().hasPrefix("https://") else {
      return .failure(ConfigProblem("must start with https:// (plain HTTP would send the token in clear)"))
    }
    let rest = text.dropFirst("https://".count)
    let authority = rest.prefix { $0 != "/" }
    var path = String(rest.dropFirst(authority.count))
    guard !authority.contains("@") else {
      return .failure(
        ConfigProblem("carries user information (user:password@); remove it: the API's credentials come from --credentials"))
    }
    guard !text.contains("?"), !text.contains("#") else {
      return .failure(ConfigProblem("has a query or fragment; give only https://host[:port][/base-path]"))
    }
    guard !authority.isEmpty, !text.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value >= 0x7F })
    else { return .failure(ConfigProblem("is not a valid https URL (no spaces or control characters)")) }
    while path.hasSuffix("/") { path.removeLast() }
    var host = String(authority)
    var portText: Substring?
    if host.hasPrefix("[") {
      guard let close = host.firstIndex(of: "]") else { return .failure(ConfigProblem("has an unclosed [IPv6] host")) }
      let after = host[host.index(after: close)...]
      guard after.isEmpty || after.hasPrefix(":") else { return .failure(ConfigProblem("has junk after the [IPv6] host")) }
      portText = after.isEmpty ? nil : after.dropFirst()
      host = String(host[host.index(after: host.startIndex)..<close])
    } else if let colon = host.lastIndex(of: ":") {
      portText = host[host.index(after: colon)...]
      host = String(host[..<colon])
    }
    if let portText {
      guard portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText), (1...65535).contains(port) else {
        return .failure(ConfigProblem("has an invalid port"))
      }
    }
    guard !host.isEmpty else { return .failure(ConfigProblem("has no host")) }
    return .success(UpstreamURL(origin: "https://\(authority)", basePath: path, host: host))
  }

  public var description: String { origin + basePath }

  /// `host[:port]` as written: the `Host` header of upstream requests.
  public var authority: String { String(origin.dropFirst("https://".count)) }

  /// The TCP port (443 unless the URL names one).
  public var port: Int {
    let afterHost = authority.hasPrefix("[") ? authority.drop { $0 != "]" }.dropFirst() : authority[...]
    guard let colon = afterHost.lastIndex(of: ":") else { return 443 }
    return Int(afterHost[afterHost.index(after: colon)...]) ?? 443
  }
}

/// One reason a configuration value is refused.
public struct ConfigProblem: Error, Sendable, Equatable, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}

extension String {
  /// A small kernel file (cgroup, proc), read whole; nil when absent.
  init?(cgroupFile path: String) throws {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 256)
    let n = read(fd, &buffer, buffer.count)
    guard n > 0 else { return nil }
    self = String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(inWhitespace: ())
  }

  fileprivate func trimmingCharacters(inWhitespace: Void) -> String {
    String(self[...].drop { $0 == " " || $0 == "\n" }.reversed().drop { $0 == " " || $0 == "\n" }.reversed())
  }
}

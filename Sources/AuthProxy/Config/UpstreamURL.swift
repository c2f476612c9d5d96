import Glibc

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

/// First step of the chain: may this request be proxied at all? Answers early with the error.
public struct RequestPolicy: Sendable {
  public let maxBody: Int
  private let authPaths: Set<String>
  private let allowed: [CIDR]

  public init(config: ServeConfig) {
    maxBody = config.maxBody
    allowed = config.allowCIDR
    authPaths = Set(config.authPaths.map { RequestPolicy.normalize($0) })
  }

  /// Anything that reaches the listener acts with the integration's identity: only the
  /// networks of `--allow-cidr` may.
  public func checkClient(_ address: String) -> ProxyError? {
    allowed.contains { $0.contains(address) } ? nil : .forbidden("client address \(address) is not allowed to use the proxy (--allow-cidr)")
  }

  public func check(method: String, target: String, bodyLength: Int) -> ProxyError? {
    guard target.hasPrefix("/") else { return .badRequest("only origin-form request targets (/path?query) are proxied") }
    if method == "CONNECT" || method == "TRACE" { return .badRequest("method \(method) is not supported") }
    if bodyLength > maxBody { return .tooLarge(limit: maxBody) }
    let path = String(target.prefix { $0 != "?" })
    if authPaths.contains(RequestPolicy.normalize(path)) {
      return .forbidden("the API's auth paths are the proxy's own; apps cannot call them")
    }
    return nil
  }

  /// The path as an upstream router might see it: percent-decoded unreserved characters and
  /// slashes, no empty or dot segments, no trailing slash, lower case. Used only to compare
  /// with the auth paths, so that `//auth/./LOGIN/` is refused like `/auth/login`.
  static func normalize(_ path: String) -> String {
    var decoded: [UInt8] = []
    let bytes = Array(path.utf8)
    var i = 0
    while i < bytes.count {
      if bytes[i] == 0x25, i + 2 < bytes.count, let value = UInt8(String(decoding: bytes[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
        decoded.append(value)
        i += 3
      } else {
        decoded.append(bytes[i])
        i += 1
      }
    }
    var segments: [Substring] = []
    for segment in String(decoding: decoded, as: UTF8.self).lowercased().split(separator: "/", omittingEmptySubsequences: true) {
      if segment == "." { continue }
      if segment == ".." {
        _ = segments.popLast()
        continue
      }
      segments.append(segment.split(separator: ";").first ?? segment)
    }
    return "/" + segments.joined(separator: "/")
  }
}

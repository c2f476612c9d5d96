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
    // Bytes, not Characters: "/" or "?" followed by a combining mark is one grapheme.
    guard target.utf8.first == 0x2F else { return .badRequest("only origin-form request targets (/path?query) are proxied") }
    if method == "CONNECT" || method == "TRACE" { return .badRequest("method \(method) is not supported") }
    if bodyLength > maxBody { return .tooLarge(limit: maxBody) }
    let path = String(decoding: target.utf8.prefix { $0 != 0x3F }, as: UTF8.self)
    if authPaths.contains(RequestPolicy.normalize(path)) {
      return .forbidden("the API's auth paths are the proxy's own; apps cannot call them")
    }
    return nil
  }

  /// The path as an upstream router might see it: percent-decoded (repeatedly: a chain of routers
  /// may decode more than once), no empty or dot segments, no path parameters (`;jsessionid=…`,
  /// stripped before the dot-segment check, as Tomcat-like routers read `..;x` as `..`), no trailing
  /// slash, ASCII lower case. Used only to compare with the auth paths, so that `//auth/./LOGIN/` is
  /// refused like `/auth/login`. Idempotent.
  static func normalize(_ path: String) -> String {
    var bytes = Array(path.utf8)
    // Percent-decoding until nothing changes; most paths have no "%" at all.
    while bytes.contains(0x25) {
      var decoded: [UInt8] = []
      decoded.reserveCapacity(bytes.count)
      var i = 0
      while i < bytes.count {
        if bytes[i] == 0x25, i + 2 < bytes.count, let high = HTTPBytes.hexValue(bytes[i + 1]), let low = HTTPBytes.hexValue(bytes[i + 2]) {
          decoded.append(UInt8(high << 4 | low))
          i += 3
        } else {
          decoded.append(bytes[i])
          i += 1
        }
      }
      // Each pass that decodes something is shorter: this ends.
      if decoded.count == bytes.count { break }
      bytes = decoded
    }
    // Segments by bytes, as a router splits them (a Character split would take "/" and a
    // combining mark after it for one grapheme, not a separator).
    var segments: [ArraySlice<UInt8>] = []
    for raw in bytes.split(separator: 0x2F, omittingEmptySubsequences: true) {
      let segment = raw.prefix { $0 != 0x3B }
      if segment.isEmpty || segment.elementsEqual([0x2E]) { continue }
      if segment.elementsEqual([0x2E, 0x2E]) {
        _ = segments.popLast()
        continue
      }
      segments.append(segment)
    }
    var normalized: [UInt8] = [0x2F]
    for (n, segment) in segments.enumerated() {
      if n > 0 { normalized.append(0x2F) }
      normalized.append(contentsOf: segment.lazy.map { $0 &- 0x41 < 26 ? $0 | 0x20 : $0 })
    }
    return String(decoding: normalized, as: UTF8.self)
  }
}

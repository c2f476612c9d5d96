/// First step of the chain: may this request be proxied at all? Answers early with the error.
public struct RequestPolicy: Sendable {
  public let maxBody: Int
  private let authPaths: Set<[UInt8]>
  /// Their lengths: most paths are ruled out by length alone (`mayBeAuthPath`).
  private let authPathLengths: Set<Int>
  private let allowed: [CIDR]

  public init(config: ServeConfig) {
    maxBody = config.maxBody
    allowed = config.allowCIDR
    authPaths = Set(config.authPaths.map { RequestPolicy.normalized($0.utf8) })
    authPathLengths = Set(authPaths.map(\.count))
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
    let path = target.utf8.prefix { $0 != 0x3F }
    // The quick look runs over the target's contiguous UTF-8 (native strings have it).
    let mayBeAuth = target.utf8.withContiguousStorageIfAvailable { mayBeAuthPath($0.prefix { $0 != 0x3F }) } ?? mayBeAuthPath(path)
    if mayBeAuth && authPaths.contains(RequestPolicy.normalized(path)) {
      return .forbidden("the API's auth paths are the proxy's own; apps cannot call them")
    }
    return nil
  }

  /// False when `path` cannot normalize to an auth path, decided without normalizing it: a
  /// path with nothing to decode or resolve (no `%`, no `;`, no empty segment, no segment
  /// starting with `.`) normalizes to itself (lower-cased, without a trailing `/`), so its
  /// length alone can rule it out. Anything else takes the whole normalization.
  private func mayBeAuthPath(_ path: some Collection<UInt8>) -> Bool {
    var previous: UInt8 = 0
    for b in path {
      if b == 0x25 || b == 0x3B || (previous == 0x2F && (b == 0x2F || b == 0x2E)) { return true }
      previous = b
    }
    let length = path.count > 1 && previous == 0x2F ? path.count - 1 : path.count
    return authPathLengths.contains(length)
  }

  /// The path as an upstream router might see it: percent-decoded (repeatedly: a chain of routers
  /// may decode more than once), no empty or dot segments, no path parameters (`;jsessionid=…`,
  /// stripped before the dot-segment check, as Tomcat-like routers read `..;x` as `..`), no trailing
  /// slash, ASCII lower case. Used only to compare with the auth paths, so that `//auth/./LOGIN/` is
  /// refused like `/auth/login`. Idempotent.
  static func normalize(_ path: String) -> String {
    String(decoding: normalized(path.utf8), as: UTF8.self)
  }

  /// `normalize` on bytes: two arrays whatever the path (this runs for every request).
  static func normalized(_ path: some Collection<UInt8>) -> [UInt8] {
    var bytes = Array(path)
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
    // combining mark after it for one grapheme, not a separator). `out` is "/seg/seg…": ".."
    // takes back its last segment.
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count + 1)
    var start = 0
    while start < bytes.count {
      let end = bytes[start...].firstIndex(of: 0x2F) ?? bytes.count
      let segment = bytes[start..<end].prefix { $0 != 0x3B }
      start = end + 1
      if segment.isEmpty || segment.elementsEqual(CollectionOfOne(0x2E)) { continue }
      if segment.elementsEqual([0x2E, 0x2E]) {
        out.removeSubrange((out.lastIndex(of: 0x2F) ?? 0)...)
        continue
      }
      out.append(0x2F)
      for b in segment { out.append(HTTPBytes.lowercased(b)) }
    }
    if out.isEmpty { out.append(0x2F) }
    return out
  }
}

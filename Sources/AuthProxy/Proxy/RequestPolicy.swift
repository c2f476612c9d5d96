/// First step of the chain: may this request be proxied at all? Answers early with the error.
///
/// Apps reach only the business API: paths under `--api-prefix`, compared after `normalized`,
/// and never the auth paths or anything that starts like one (`/auth/logout.json`,
/// `/auth/logout%00`, `/auth/login/x`), whatever the prefix: some routers trim or strip such
/// suffixes, and a logout revokes the tokens of every replica.
public struct RequestPolicy: Sendable {
  public let maxBody: Int
  /// The auth paths, normalized.
  private let authPaths: [[UInt8]]
  /// `--api-prefix`, normalized (no trailing slash; `/` admits every path), and as given.
  private let prefix: [UInt8]
  private let prefixText: String
  /// False when no path under the prefix can start like an auth path: then a path that passes
  /// the prefix needs no auth-path look (the default, `/api/` and `/auth/…`).
  private let authMayShareThePrefix: Bool
  private let allowed: [CIDR]

  public init(config: ServeConfig) {
    maxBody = config.maxBody
    allowed = config.allowCIDR
    authPaths = config.authPaths.map { RequestPolicy.normalized($0.utf8) }
    prefix = RequestPolicy.normalized(config.apiPrefix.utf8)
    prefixText = config.apiPrefix
    authMayShareThePrefix = authPaths.contains { [prefix] auth in
      prefix == [0x2F] || auth.starts(with: prefix) || prefix.starts(with: auth)
    }
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
    // The look runs over the target's contiguous UTF-8 (native strings have it).
    return target.utf8.withContiguousStorageIfAvailable { checkPath($0.prefix { $0 != 0x3F }) }
      ?? checkPath(target.utf8.prefix { $0 != 0x3F })
  }

  private func checkPath(_ path: some Collection<UInt8>) -> ProxyError? {
    // A plain path (nothing to decode or resolve) normalizes to itself, lower-cased and without
    // a trailing slash: the prefix is compared on its bytes as they are, with no copy.
    let plain = RequestPolicy.isPlain(path)
    let normal = plain && !authMayShareThePrefix ? nil : RequestPolicy.normalized(path)
    let under = if let normal { isUnderPrefix(normal) } else { isUnderPrefix(path) }
    guard under else {
      return .forbidden("apps reach only the API's paths under \(prefixText) through the proxy (--api-prefix)")
    }
    if let normal, startsLikeAnAuthPath(normal) {
      return .forbidden("the API's auth paths are the proxy's own; apps cannot call them")
    }
    return nil
  }

  /// `path` is the prefix itself or below it. `path` is normalized, or plain: then only its
  /// case and a trailing slash differ from the normalized form, which do not change the answer.
  private func isUnderPrefix(_ path: some Collection<UInt8>) -> Bool {
    if prefix.count == 1 { return true }
    var bytes = path.makeIterator()
    for expected in prefix {
      guard let b = bytes.next(), HTTPBytes.lowercased(b) == expected else { return false }
    }
    guard let next = bytes.next() else { return true }
    return next == 0x2F
  }

  /// An auth path, or an auth path followed by anything a router might strip or read as a
  /// format suffix: every byte but a letter, a digit, `-` and `_` (`/auth/login-history` is
  /// another route; `/auth/logout.json`, `/auth/logout~`, `/auth/logout\0`, `/auth/logout/x` are not).
  private func startsLikeAnAuthPath(_ path: [UInt8]) -> Bool {
    authPaths.contains { auth in
      guard path.starts(with: auth) else { return false }
      guard path.count > auth.count else { return true }
      let next = path[auth.count]
      return !(HTTPBytes.isAlphanumeric(next) || next == 0x2D || next == 0x5F)
    }
  }

  /// No `%`, no `;`, no empty segment but a trailing one, no segment starting with `.`.
  static func isPlain(_ path: some Collection<UInt8>) -> Bool {
    var previous: UInt8 = 0
    for b in path {
      if b == 0x25 || b == 0x3B || (previous == 0x2F && (b == 0x2F || b == 0x2E)) { return false }
      previous = b
    }
    return true
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

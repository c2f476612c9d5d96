import Glibc

/// `VAULT_ADDR`, checked: https, or plain http only to a loopback address (a Vault Agent or
/// a dev server on the same host), since the token and the password cross it.
struct VaultAddress: Equatable {
  /// Scheme, authority and any base path, without a trailing slash.
  var base: String
  var isHTTPS: Bool

  struct Problem: Error {
    let reason: String
  }

  static func parse(_ text: String) -> Result<VaultAddress, Problem> {
    let trimmed = text.trimmingASCIIWhitespace()
    let lower = trimmed.lowercased()
    let isHTTPS: Bool
    let rest: Substring
    if lower.hasPrefix("https://") {
      isHTTPS = true
      rest = trimmed.dropFirst(8)
    } else if lower.hasPrefix("http://") {
      isHTTPS = false
      rest = trimmed.dropFirst(7)
    } else {
      return .failure(Problem(reason: "must start with https:// (e.g. https://vault.example.com:8200)"))
    }
    let authority = rest.prefix { $0 != "/" }
    guard !authority.isEmpty, !rest.contains(where: { $0 == "?" || $0 == "#" || $0.isWhitespace }) else {
      return .failure(Problem(reason: "is not a URL like https://vault.example.com:8200"))
    }
    // Not echoed: a user:password@ part would be a secret.
    guard !authority.contains("@") else {
      return .failure(Problem(reason: "must not carry user information (user@); give the token in VAULT_TOKEN"))
    }
    let host: Substring
    if authority.hasPrefix("[") {
      guard let close = authority.firstIndex(of: "]") else {
        return .failure(Problem(reason: "has an unterminated [IPv6] host"))
      }
      host = authority[authority.index(after: authority.startIndex)..<close]
    } else {
      host = authority.prefix { $0 != ":" }
    }
    if !isHTTPS && !isLoopback(String(host)) {
      return .failure(
        Problem(
          reason:
            "\(trimmed) is plain http to a host that is not loopback; use https (the token and the password would cross the network in clear)"
        ))
    }
    var base = String(trimmed)
    while base.hasSuffix("/") { base.removeLast() }
    return .success(VaultAddress(base: base, isHTTPS: isHTTPS))
  }

  static func isLoopback(_ host: String) -> Bool {
    if host.lowercased() == "localhost" { return true }
    var v4 = in_addr()
    if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, host, &v6) == 1 {
      return withUnsafeBytes(of: v6) { bytes in bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1 }
    }
    return false
  }
}

extension String {
  /// Without leading and trailing spaces, tabs and line breaks.
  func trimmingASCIIWhitespace() -> String {
    let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
    guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
    return String(self[first...last])
  }
}

import Glibc

/// `--token-store`: `memory`, or `redis://[:password@]host:port[/db]` (SPEC §6).
public enum TokenStoreSpec: Sendable, Equatable {
  case memory
  /// `address` is an IP: the name is resolved once at start-up (hiredis would resolve it
  /// with a blocking call on every reconnect).
  case redis(address: String, port: Int, password: Secret?, database: Int)

  public static func parse(_ text: String) -> Result<TokenStoreSpec, ConfigProblem> {
    if text == "memory" { return .success(.memory) }
    if text.hasPrefix("rediss://") {
      return .failure(
        ConfigProblem("uses rediss://, but Debian 12's hiredis (0.14) has no TLS; use redis:// on a private network or a TLS sidecar"))
    }
    guard text.hasPrefix("redis://") else { return .failure(ConfigProblem("is neither memory nor redis://[:password@]host:port[/db]")) }
    var rest = Substring(text.dropFirst("redis://".count))
    var password: Secret?
    if let at = rest.lastIndex(of: "@") {
      var userInfo = rest[..<at]
      if let colon = userInfo.firstIndex(of: ":") { userInfo = userInfo[userInfo.index(after: colon)...] }
      password = userInfo.isEmpty ? nil : Secret(String(userInfo))
      rest = rest[rest.index(after: at)...]
    }
    var database = 0
    if let slash = rest.firstIndex(of: "/") {
      let db = rest[rest.index(after: slash)...]
      guard db.isEmpty || (db.allSatisfy({ $0.isASCII && $0.isNumber }) && Int(db) != nil) else {
        return .failure(ConfigProblem("has a database that is not a number"))
      }
      database = Int(db) ?? 0
      rest = rest[..<slash]
    }
    guard let hostPort = HostPort.parse(String(rest)), hostPort.port > 0 else {
      return .failure(ConfigProblem("needs host:port, e.g. redis://127.0.0.1:6379"))
    }
    guard let address = resolve(hostPort.host) else {
      return .failure(ConfigProblem("names a host that does not resolve (\(hostPort.host))"))
    }
    return .success(.redis(address: address, port: hostPort.port, password: password, database: database))
  }

  /// The first address of `host`, as text.
  static func resolve(_ host: String) -> String? {
    if CIDR.bytes(of: host) != nil { return host }
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var result: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return nil }
    defer { freeaddrinfo(result) }
    var text = [CChar](repeating: 0, count: 64)
    guard getnameinfo(first.pointee.ai_addr, first.pointee.ai_addrlen, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0
    else { return nil }
    return String(cBuffer: text)
  }

  public var isShared: Bool { self != .memory }
}

/// `--token-store` (SPEC §6): `memory`, or a Redis shared by the replicas.
public enum TokenStoreSpec: Sendable, Equatable {
  case memory
  case redis(RedisTarget)

  public static let forms =
    "memory, redis://[[user]:password@]host:port[/db], rediss://… (TLS), redis-sentinel://host:port[,host:port…]/MASTER[/db] or rediss-sentinel://… (TLS)"

  /// Parses the flag's value. Problems never quote the value: it may hold the Redis password.
  /// Host names are kept as names: they are resolved off the loop at every connect.
  public static func parse(_ text: String) -> Result<TokenStoreSpec, ConfigProblem> {
    if text == "memory" { return .success(.memory) }
    let schemes: [(String, Bool, Bool)] = [
      ("redis://", false, false), ("rediss://", true, false), ("redis-sentinel://", false, true), ("rediss-sentinel://", true, true),
    ]
    guard let (scheme, tls, sentinel) = schemes.first(where: { text.hasPrefix($0.0) }) else {
      return .failure(ConfigProblem("is not one of \(forms)"))
    }
    var rest = Substring(text.dropFirst(scheme.count))
    var username: String?
    var password: Secret?
    if let at = rest.lastIndex(of: "@") {
      let userInfo = rest[..<at]
      if let colon = userInfo.firstIndex(of: ":") {
        let user = userInfo[..<colon]
        username = user.isEmpty ? nil : String(user)
        let pass = userInfo[userInfo.index(after: colon)...]
        password = pass.isEmpty ? nil : Secret(percentDecoded(pass))
      } else if !userInfo.isEmpty {
        // redis://secret@host: the common short form of a password without a user.
        password = Secret(percentDecoded(userInfo))
      }
      rest = rest[rest.index(after: at)...]
    }
    var path: [Substring] = []
    if let slash = rest.firstIndex(of: "/") {
      path = rest[rest.index(after: slash)...].split(separator: "/", omittingEmptySubsequences: false)
      rest = rest[..<slash]
    }
    var masterName: String?
    if sentinel {
      guard let name = path.first, !name.isEmpty else {
        return .failure(
          ConfigProblem("needs the master's name after the Sentinels, e.g. redis-sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster"))
      }
      masterName = String(name)
      path.removeFirst()
    }
    var database = 0
    if let db = path.first, path.count == 1, !db.isEmpty {
      guard db.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(db), number < 1 << 16 else {
        return .failure(ConfigProblem("has a database that is not a number"))
      }
      database = number
    } else if path.count > 1 || (path.first.map { !$0.isEmpty } ?? false) {
      return .failure(ConfigProblem("has a path that is not a database number"))
    }
    let hosts = rest.split(separator: ",", omittingEmptySubsequences: false).map { HostPort.parse(String($0)) }
    guard !hosts.isEmpty, hosts.allSatisfy({ ($0?.port ?? 0) > 0 }) else {
      return .failure(
        ConfigProblem(
          sentinel ? "needs Sentinels as host:port[,host:port…], e.g. 10.0.0.1:26379" : "needs host:port, e.g. redis://127.0.0.1:6379"))
    }
    guard sentinel || hosts.count == 1 else {
      return .failure(ConfigProblem("names more than one host; use redis-sentinel:// for several"))
    }
    let servers = hosts.compactMap { $0 }
    let locator: RedisTarget.Locator = sentinel ? .sentinel(servers, masterName: masterName!) : .direct(servers[0])
    return .success(.redis(RedisTarget(locator: locator, tls: tls, username: username, password: password, database: database)))
  }

  private static func percentDecoded(_ text: Substring) -> String {
    var bytes: [UInt8] = []
    var index = text.utf8.startIndex
    let utf8 = text.utf8
    while index < utf8.endIndex {
      let byte = utf8[index]
      if byte == UInt8(ascii: "%"), let high = utf8.index(index, offsetBy: 1, limitedBy: utf8.endIndex), high < utf8.endIndex,
        let low = utf8.index(index, offsetBy: 2, limitedBy: utf8.endIndex), low < utf8.endIndex,
        let value = UInt8(String(decoding: [utf8[high], utf8[low]], as: UTF8.self), radix: 16)
      {
        bytes.append(value)
        index = utf8.index(after: low)
        continue
      }
      bytes.append(byte)
      index = utf8.index(after: index)
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  public var isShared: Bool { self != .memory }
}

/// Where the shared Redis is and how to speak to it: one server, or the master a set of
/// Sentinels names (found again after every lost connection, so a failover is followed).
public struct RedisTarget: Sendable, Equatable {
  public enum Locator: Sendable, Equatable {
    case direct(HostPort)
    case sentinel([HostPort], masterName: String)
  }
  public var locator: Locator
  /// TLS (`rediss://`, `rediss-sentinel://`: to the Sentinels and the master alike).
  public var tls: Bool
  /// An ACL user (`AUTH user password`); nil: the default user (`AUTH password`).
  public var username: String?
  public var password: Secret?
  public var database: Int
  /// `--token-store-ca-file`, `--token-store-client-cert`, `--token-store-client-key`.
  public var caFile: String?
  public var clientCertificate: String?
  public var clientKey: String?
  /// Bounds every step: resolution, connect, TLS and AUTH together, and each command.
  public var timeout = 2.0

  public init(locator: Locator, tls: Bool, username: String?, password: Secret?, database: Int) {
    self.locator = locator
    self.tls = tls
    self.username = username
    self.password = password
    self.database = database
  }

  /// For logs: the servers and mode, never the credentials.
  public var summary: String {
    switch locator {
    case .direct(let server): "\(tls ? "rediss" : "redis")://\(server)"
    case .sentinel(let sentinels, let name):
      "\(tls ? "rediss" : "redis")-sentinel://\(sentinels.map(\.description).joined(separator: ","))/\(name)"
    }
  }
}

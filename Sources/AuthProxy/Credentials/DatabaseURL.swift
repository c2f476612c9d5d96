/// `--database-url`, checked: which engine, which host (for the TLS rule), whether it carries a
/// password. `postgres://` URLs go to libpq whole (it parses them itself, and its keywords in the
/// query string keep working); `mysql://` URLs are taken apart here for Connector/C, which has no
/// URL syntax. Never echoed as written: `redacted` drops the password.
public struct DatabaseURL: Sendable, Equatable {
  public enum Engine: String, Sendable {
    case postgres = "PostgreSQL"
    case mysql = "MySQL/MariaDB"
  }

  /// How the connection is protected: TLS with the server's certificate and name verified
  /// (always, unless the URL asks for a plain connection to a loopback server).
  public enum Transport: Sendable, Equatable {
    case verifiedTLS
    case plainLoopback
  }

  public let engine: Engine
  /// The URL as given, for libpq (it may hold the password: never logged).
  let text: Secret
  public let user: String?
  let password: Secret?
  /// Hosts as written (no brackets); empty for the client library's local socket.
  public let hosts: [String]
  public let port: Int?
  public let database: String?
  /// MySQL: a Unix socket path from `?socket=`.
  public let socket: String?
  public let transport: Transport

  public var hasPassword: Bool { password != nil }

  /// Every host on this machine (loopback addresses, `localhost`, a Unix socket): TLS is then
  /// optional, since nothing crosses a network.
  public var isLoopback: Bool { hosts.allSatisfy { $0.hasPrefix("/") || VaultAddress.isLoopback($0) } }

  /// The URL without its password, for messages.
  public var redacted: String {
    let scheme = engine == .postgres ? "postgres" : "mysql"
    let who = user.map { "\($0)@" } ?? ""
    let where_ = hosts.map { $0.contains(":") ? "[\($0)]" : $0 }.joined(separator: ",")
    return "\(scheme)://\(who)\(where_)\(port.map { ":\($0)" } ?? "")/\(database ?? "")"
  }

  public struct Problem: Error, Sendable, Equatable {
    public let reason: String
  }

  public static func parse(_ raw: String) -> Result<DatabaseURL, Problem> {
    let text = raw.trimmingASCIIWhitespace()
    let lower = text.lowercased()
    let engine: Engine
    let rest: Substring
    if let scheme = ["postgresql://", "postgres://"].first(where: lower.hasPrefix) {
      engine = .postgres
      rest = text.dropFirst(scheme.count)
    } else if let scheme = ["mysql://", "mariadb://"].first(where: lower.hasPrefix) {
      engine = .mysql
      rest = text.dropFirst(scheme.count)
    } else {
      return .failure(Problem(reason: "must start with postgres:// or mysql:// (e.g. postgres://authproxy@db.example.com/app)"))
    }
    guard !rest.contains(where: { $0 == "#" || $0.isWhitespace }) else {
      return .failure(Problem(reason: "is not a URL like postgres://user@host:5432/database (spaces or # in it)"))
    }
    let beforeQuery = rest.prefix { $0 != "?" }
    let query = rest.dropFirst(beforeQuery.count + 1)
    let authorityAndPath = beforeQuery
    let authority = authorityAndPath.prefix { $0 != "/" }
    let path = authorityAndPath.dropFirst(authority.count + 1)
    var user: String?
    var password: Secret?
    var hostPart = authority
    if let at = authority.lastIndex(of: "@") {
      let userInfo = authority[..<at]
      hostPart = authority[authority.index(after: at)...]
      if let colon = userInfo.firstIndex(of: ":") {
        user = percentDecoded(userInfo[..<colon])
        password = percentDecoded(userInfo[userInfo.index(after: colon)...]).map { Secret($0) }
        guard password != nil else { return .failure(Problem(reason: "has a badly percent-encoded password")) }
      } else {
        user = percentDecoded(userInfo)
      }
      guard user != nil else { return .failure(Problem(reason: "has a badly percent-encoded user name")) }
      if user == "" { user = nil }
    }
    var hosts: [String] = []
    var port: Int?
    for entry in hostPart.split(separator: ",", omittingEmptySubsequences: false) where !(entry.isEmpty && hostPart.isEmpty) {
      var host: Substring
      var portText: Substring?
      if entry.hasPrefix("[") {
        guard let close = entry.firstIndex(of: "]") else { return .failure(Problem(reason: "has an unterminated [IPv6] host")) }
        host = entry[entry.index(after: entry.startIndex)..<close]
        let after = entry[entry.index(after: close)...]
        if after.hasPrefix(":") {
          portText = after.dropFirst()
        } else if !after.isEmpty {
          return .failure(Problem(reason: "has text after the [IPv6] host"))
        }
      } else {
        host = entry.prefix { $0 != ":" }
        if entry.count > host.count { portText = entry.dropFirst(host.count + 1) }
      }
      guard let decodedHost = percentDecoded(host), !decodedHost.isEmpty || hostPart.count <= 1 else {
        return .failure(Problem(reason: "has an empty host in its host list"))
      }
      if let portText {
        guard let number = Int(portText), (1...65535).contains(number) else {
          return .failure(Problem(reason: "has a port that is not a number from 1 to 65535"))
        }
        port = number
      }
      if !decodedHost.isEmpty { hosts.append(decodedHost) }
    }
    if engine == .mysql && hosts.count > 1 {
      return .failure(Problem(reason: "names several hosts; a mysql:// URL takes one"))
    }
    var database = percentDecoded(path)
    if database == "" { database = nil }
    var socket: String?
    var sslMode: String?
    for pair in query.split(separator: "&") {
      let name = String(pair.prefix { $0 != "=" }).lowercased()
      guard let value = percentDecoded(pair.dropFirst(name.count + 1)) else {
        return .failure(Problem(reason: "has a badly percent-encoded query parameter \(name)"))
      }
      switch name {
      case "host", "hostaddr":
        if engine == .postgres { hosts = value.split(separator: ",").map(String.init) }
      case "sslmode", "ssl-mode", "ssl_mode":
        sslMode = value.lowercased()
      case "socket" where engine == .mysql:
        socket = value
        hosts = [value]
      case "password":
        // Not echoed: it is a secret. The same rule as a password in the user part.
        password = Secret(value)
      default:
        if engine == .mysql {
          return .failure(
            Problem(reason: "has a query parameter '\(name)' that authproxy does not know (mysql:// takes ssl-mode and socket)"))
        }
      }
    }
    if database == nil, engine == .mysql {
      return .failure(Problem(reason: "names no database; write it like mysql://authproxy@db.example.com/app"))
    }
    var url = DatabaseURL(
      engine: engine, text: Secret(text), user: user, password: password, hosts: hosts, port: port, database: database, socket: socket,
      transport: .verifiedTLS)
    switch sslMode {
    case nil, "verify-full", "verify_identity":
      break
    case "disable", "disabled":
      guard url.isLoopback else {
        return .failure(
          Problem(
            reason:
              "asks for a plain connection (\(sslMode!)) to \(url.hosts.joined(separator: ",")), which is not loopback: the password and the credentials would cross the network in clear; remove it (TLS is verified by default; --database-ca-file names the CA)"
          ))
      }
      url = DatabaseURL(
        engine: engine, text: Secret(text), user: user, password: password, hosts: hosts, port: port, database: database,
        socket: socket, transport: .plainLoopback)
    default:
      return .failure(
        Problem(
          reason:
            "asks for sslmode \(sslMode!); authproxy always verifies the server's certificate and name (verify-full), so leave it out (or disable, for a server on loopback only)"
        ))
    }
    return .success(url)
  }

  private static func percentDecoded(_ text: Substring) -> String? {
    var bytes: [UInt8] = []
    var index = text.utf8.startIndex
    let utf8 = text.utf8
    while index != utf8.endIndex {
      let byte = utf8[index]
      if byte == UInt8(ascii: "%") {
        let first = utf8.index(after: index)
        guard first != utf8.endIndex else { return nil }
        let second = utf8.index(after: first)
        guard second != utf8.endIndex, let high = hexValue(utf8[first]), let low = hexValue(utf8[second]) else { return nil }
        bytes.append(high << 4 | low)
        index = utf8.index(after: second)
      } else {
        bytes.append(byte)
        index = utf8.index(after: index)
      }
    }
    return String(validating: bytes, as: UTF8.self)
  }

  private static func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
    default: nil
    }
  }
}

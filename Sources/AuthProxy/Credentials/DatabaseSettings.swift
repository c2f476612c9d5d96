/// How the `db:` credential source reaches its database: `--database-url`, where the password
/// may come from besides the URL, the CA to verify the server with, and the timeouts. Parsed
/// once by `ServeConfig`.
public struct DatabaseSettings: Sendable, Equatable {
  public var url: DatabaseURL
  /// `--database-password-file`: the first line of this file is the password, read at each load
  /// (a mounted secret that changes is picked up at the next rotation).
  public var passwordFile: String?
  /// `--database-ca-file`: PEM trust anchors for the server's certificate; the system's store
  /// when nil.
  public var caFile: String?
  /// `--database-timeout`: for the connection (TLS included), and again for the query.
  public var timeout = 10.0

  public init(url: DatabaseURL, passwordFile: String? = nil, caFile: String? = nil, timeout: Double = 10) {
    self.url = url
    self.passwordFile = passwordFile
    self.caFile = caFile
    self.timeout = timeout
  }
}

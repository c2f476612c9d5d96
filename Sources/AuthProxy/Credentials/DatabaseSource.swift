import COpenSSL
import Glibc

/// `--credentials db:ID`: the API security guide's database recipe. One parameterised read of
/// the active row (`SELECT encrypted_credentials FROM api_credentials WHERE id = ? AND active = 1`)
/// from PostgreSQL (libpq) or MySQL/MariaDB (Connector/C), at start-up and on each rotation, and
/// the value opened exactly as an `encrypted-file:` (`authproxy seal` output, or PHP's
/// `openssl_encrypt` layout). Blocking, bounded by `--database-timeout` twice (connect, query):
/// it runs before the event loops start, or on the control loop's loader thread.
enum DatabaseSource {
  /// PostgreSQL: `active::integer` so that a `boolean` column reads as the guide's `active = 1`
  /// does on MySQL (where BOOLEAN is TINYINT); `$1` takes the id column's type.
  static let postgresSQL = "SELECT encrypted_credentials FROM api_credentials WHERE id = $1 AND active::integer = 1"
  static let mysqlSQL = "SELECT encrypted_credentials FROM api_credentials WHERE id = ? AND active = 1"

  static func load(id: String, settings: DatabaseSettings, environment: [String: String], spec: CredentialSpec)
    throws(CredentialError) -> Credentials
  {
    let key = try CredentialSource.encryptionKey(environment, spec: spec)
    var password: Secret?
    if let file = settings.passwordFile {
      var contents = try CredentialFile.read(file, ownerOnly: false, source: "--credentials \(spec)").contents
      defer { contents.wipe() }
      let text = String(decoding: contents.prefix { $0 != 0x0A && $0 != 0x0D }, as: UTF8.self)
      guard !text.isEmpty else {
        throw CredentialError(.invalid, spec, "--database-password-file \(file) is empty; put the database password on its first line")
      }
      password = Secret(text)
    }
    let url = settings.url
    let result: Result<DatabaseRow, DatabaseFailure>
    switch url.engine {
    case .postgres:
      result = PostgresQuery.fetchOne(
        connection: postgresParameters(settings, password: password), sql: postgresSQL, argument: id,
        connectTimeout: settings.timeout, queryTimeout: settings.timeout)
    case .mysql:
      result = MariaDBQuery.fetchOne(
        url: url, password: password ?? url.password, caFile: settings.caFile ?? systemCAFile, sql: mysqlSQL, argument: id,
        timeout: settings.timeout)
    }
    let row: DatabaseRow
    switch result {
    case .success(let found): row = found
    case .failure(let failure): throw error(for: failure, settings: settings, spec: spec)
    }
    switch row {
    case .none:
      throw CredentialError(
        .invalid, spec,
        "api_credentials has no active row with id = \(id) at \(url.redacted) (no such row, or active is not 1); store the output of `authproxy seal < credentials.json` in encrypted_credentials of that row, or set active = 1"
      )
    case .several:
      throw CredentialError(.invalid, spec, "api_credentials has more than one active row with id = \(id); make id unique")
    case .value(let sealed):
      return try CredentialSource.openSealed(
        sealed, key: key, spec: spec, what: "encrypted_credentials of row \(id)",
        notSealedFix: "store the output of: authproxy seal < credentials.json", fallbackRotatedAt: nil)
    }
  }

  /// libpq's keywords: the URL first (expanded by libpq), then what authproxy enforces, which
  /// overrides anything the URL or the PG* variables say.
  static func postgresParameters(_ settings: DatabaseSettings, password: Secret?) -> [(String, String)] {
    var parameters = [("dbname", settings.url.text.reveal), ("application_name", "authproxy")]
    switch settings.url.transport {
    case .verifiedTLS:
      parameters += [("sslmode", "verify-full"), ("sslrootcert", settings.caFile ?? systemCAFile)]
    case .plainLoopback:
      parameters.append(("sslmode", "disable"))
    }
    if let password { parameters.append(("password", password.reveal)) }
    return parameters
  }

  /// OpenSSL's default CA bundle (Debian: /usr/lib/ssl/cert.pem → /etc/ssl/certs/ca-certificates.crt):
  /// libpq 15 has no `sslrootcert=system`, and would otherwise look only in ~/.postgresql/root.crt.
  static var systemCAFile: String { String(cString: X509_get_default_cert_file()) }

  static func error(for failure: DatabaseFailure, settings: DatabaseSettings, spec: CredentialSpec) -> CredentialError {
    let at = settings.url.redacted
    let detail = failure.detail
    switch failure.kind {
    case .unreachable:
      return CredentialError(
        .unreachable, spec, "cannot reach the database at \(at) (\(detail)); check that it runs and that --database-url names it")
    case .library:
      let needs =
        settings.url.engine == .postgres
        ? "libpq (Debian: libpq5; elsewhere the package with libpq.so.5)"
        : "MariaDB Connector/C (Debian: libmariadb3; elsewhere the package with libmariadb.so.3)"
      return CredentialError(
        .unreachable, spec, "the db: source needs \(needs), loaded when a db: source is used (\(detail)); install it")
    case .refused:
      let places =
        settings.url.engine == .postgres
        ? "--database-password-file, the password in AUTHPROXY_DATABASE_URL, PGPASSFILE or ~/.pgpass"
        : "--database-password-file, the password in AUTHPROXY_DATABASE_URL, or MYSQL_PWD"
      return CredentialError(
        .invalid, spec,
        "the database at \(at) refused the login (\(detail)); check the user, the database name and the password (\(places))")
    case .noTLS:
      return CredentialError(
        .invalid, spec,
        "the database at \(at) offers no TLS (\(detail)); enable TLS on the server (authproxy never sends the password in clear; only a server on loopback may be reached plainly, with sslmode=disable in the URL)"
      )
    case .untrusted:
      return CredentialError(
        .invalid, spec,
        "the database's certificate at \(at) is not trusted (\(detail)); give the CA that signed it with --database-ca-file, and use a host name the certificate names"
      )
    case .query:
      return CredentialError(
        .invalid, spec,
        "reading api_credentials at \(at) failed (\(detail)); the table needs the columns id, encrypted_credentials and active, and the user needs SELECT on it"
      )
    }
  }
}

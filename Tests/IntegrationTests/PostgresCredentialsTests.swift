import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// One TLS server (hostssl only) and one that offers no TLS, shared by the suite's tests; each
/// test uses rows of its own, so they run in parallel.
private let tlsPostgres = Result { try PostgresServer() }
private let plainPostgres = Result { try PostgresServer(tls: false) }

/// `--credentials db:ID` against a real PostgreSQL (issue 19).
@Suite(.enabled(if: PostgresServer.unavailable == nil, "\(PostgresServer.unavailable ?? "")"))
struct PostgresCredentialsTests {
  let demo = SandboxAPI.demoUsers[0]
  let demoRotated = SandboxAPI.demoUsers[1]
  let key = TestKey()

  /// Settings for the TLS server: the app role's password from a file, the test CA.
  func settings(_ server: PostgresServer, password: String? = nil, ca: String? = nil, url: String? = nil, timeout: String = "10s") throws
    -> DatabaseSettings
  {
    try databaseSettings([
      "database-url": url ?? server.url(), "database-password-file": try secretFile(password ?? server.appPassword),
      "database-ca-file": ca ?? server.caPath, "database-timeout": timeout,
    ])
  }

  @Test func readsTheActiveRowOverVerifiedTLS() throws {
    let server = try tlsPostgres.get()
    let id = uniqueRowID()
    try server.put(id: id, sealed: try key.seal(demo))
    let credentials = try key.load(id, try settings(server))
    #expect(credentials.username == demo.username)
    #expect(credentials.password.reveal == demo.password)
    // pg_hba.conf has only hostssl lines: the read above could not have been plain.
    #expect(try server.admin("SHOW ssl") == "on")
  }

  @Test func theURLMayCarryThePasswordWhenItComesFromTheVariable() throws {
    let server = try tlsPostgres.get()
    let id = uniqueRowID()
    try server.put(id: id, sealed: try key.seal(demo))
    let url = "postgres://authproxy:\(server.appPassword)@127.0.0.1:\(server.port)/app"
    let fromVariable = try databaseSettings(
      ["database-ca-file": server.caPath], environment: ["AUTHPROXY_DATABASE_URL": url])
    #expect(try key.load(id, fromVariable).username == demo.username)
    // The same URL as a flag shows in ps: refused, and the message does not repeat it.
    let refused = ServeConfig.load(
      flags: ["upstream": "https://api.example.com", "database-url": url, "credentials": "db:\(id)"], environment: [:])
    guard case .failure(let errors) = refused else {
      Issue.record("a password in --database-url was accepted")
      return
    }
    #expect(errors.description.contains("AUTHPROXY_DATABASE_URL"))
    #expect(!errors.description.contains(server.appPassword))
  }

  @Test func aRowSealedByPHPsOpensslEncryptOpensUnchanged() throws {
    let server = try tlsPostgres.get()
    let sealed = try #require(try key.sealWithPHP(demo), "php-cli is not installed: run ./scripts/install-deps")
    let id = uniqueRowID()
    try server.put(id: id, sealed: sealed)
    let credentials = try key.load(id, try settings(server))
    #expect(credentials.username == demo.username)
    #expect(credentials.password.reveal == demo.password)
  }

  @Test func aMissingOrInactiveRowNamesTheCauseAndTheFix() throws {
    let server = try tlsPostgres.get()
    let id = uniqueRowID()
    let missing = try #require(key.loadError(id, try settings(server)))
    #expect(missing.kind == .invalid)
    #expect(missing.description.contains("no active row with id = \(id)"))
    #expect(missing.description.contains("authproxy seal"))
    try server.put(id: id, sealed: try key.seal(demo), active: false)
    let inactive = try #require(key.loadError(id, try settings(server)))
    #expect(inactive.kind == .invalid)
    #expect(inactive.description.contains("set active = 1"))
  }

  @Test func aWrongKeyIsTheGCMTagFailingNotGarbage() throws {
    let server = try tlsPostgres.get()
    let id = uniqueRowID()
    try server.put(id: id, sealed: try key.seal(demo))
    let error = try #require(TestKey().loadError(id, try settings(server)))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("ENCRYPTION_KEY is not the key it was sealed with"))
  }

  @Test func aValueNotInTheSealedFormatSaysHowToMakeOne() throws {
    let server = try tlsPostgres.get()
    let id = uniqueRowID()
    try server.put(id: id, sealed: "{\"username\":\"demo\",\"password\":\"plain-text-in-the-db\"}")
    let error = try #require(key.loadError(id, try settings(server)))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("is not sealed credentials"))
    #expect(error.description.contains("authproxy seal"))
    #expect(!error.description.contains("plain-text-in-the-db"))
  }

  @Test func aRefusedPasswordNamesWhereThePasswordComesFrom() throws {
    let server = try tlsPostgres.get()
    let error = try #require(key.loadError(uniqueRowID(), try settings(server, password: "not-the-db-password")))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("refused the login"))
    #expect(error.description.contains("--database-password-file"))
    #expect(!error.description.contains("not-the-db-password"))
  }

  @Test func aCertificateFromAnotherCAIsRefused() throws {
    let server = try tlsPostgres.get()
    let other = temporaryDirectory("other-ca")
    try ThrowawayPKI.make(in: other, caName: "some other CA")
    let error = try #require(key.loadError(uniqueRowID(), try settings(server, ca: other + "/ca.pem")))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("not trusted"))
    #expect(error.description.contains("--database-ca-file"))
  }

  @Test func aServerOfferingNoTLSIsAClearErrorUnlessALoopbackURLOptsOut() throws {
    let server = try plainPostgres.get()
    let id = uniqueRowID()
    try server.put(id: id, sealed: try key.seal(demo))
    let error = try #require(key.loadError(id, try settings(server)))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("offers no TLS"))
    // Loopback only, and only when the URL says so.
    let plain = try settings(server, url: server.url(query: "sslmode=disable"))
    #expect(try key.load(id, plain).username == demo.username)
    let remote = ServeConfig.load(
      flags: ["upstream": "https://api.example.com", "database-url": "postgres://authproxy@db.example.com/app?sslmode=disable"],
      environment: [:])
    #expect(throws: ConfigErrors.self) { try remote.get() }
  }

  @Test func aDatabaseThatIsDownIsUnreachableNotInvalid() throws {
    let server = try tlsPostgres.get()
    let closed = try settings(server, url: "postgres://authproxy@127.0.0.1:\(freePort())/app")
    let error = try #require(key.loadError(uniqueRowID(), closed))
    #expect(error.kind == .unreachable)
    #expect(error.description.contains("cannot reach the database"))
  }

  @Test func aServerThatNeverAnswersTimesOut() throws {
    let silent = try SilentListener()
    let started = Date()
    let error = try #require(
      key.loadError(
        uniqueRowID(),
        try databaseSettings(["database-url": "postgres://authproxy@127.0.0.1:\(silent.port)/app", "database-timeout": "1s"])))
    let took = Date().timeIntervalSince(started)
    #expect(error.kind == .unreachable)
    #expect(error.description.contains("no connection within 1s"))
    #expect(took >= 1 && took < 5, "took \(took)s")
  }
}

/// The `db:` source through the real binary: exit codes at start-up (SPEC §8) and libpq's own
/// password places.
@Suite(.enabled(if: PostgresServer.unavailable == nil, "\(PostgresServer.unavailable ?? "")"))
struct PostgresCommandLineTests {
  let demo = SandboxAPI.demoUsers[0]
  let key = TestKey()

  @Test func checkCredentialsTakesTheDatabasePasswordFromPGPASSFILE() throws {
    let server = try tlsPostgres.get()
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let id = uniqueRowID()
    try server.put(id: id, sealed: try key.seal(demo))
    let passfile = try secretFile("127.0.0.1:\(server.port):app:authproxy:\(server.appPassword)\n")
    let run = try runBinary(
      [
        "check-credentials", "--upstream", sandbox.baseURL, "--ca-file", sandbox.caPath, "--credentials", "db:\(id)",
        "--database-url", server.url(), "--database-ca-file", server.caPath,
      ], environment: key.environment.merging(["PGPASSFILE": passfile]) { a, _ in a })
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stdout.contains("ok: logged in as '\(demo.username)'"))
    #expect(!(run.stdout + run.stderr).contains(server.appPassword))
  }

  @Test func serveExitsSixtyFourForWhatOnlyAChangeFixesAndSixtyNineForADownDatabase() throws {
    let server = try tlsPostgres.get()
    let password = try secretFile(server.appPassword)
    func serve(_ id: Int, url: String) throws -> BinaryRun {
      try runBinary(
        [
          "serve", "--upstream", "https://127.0.0.1:9", "--credentials", "db:\(id)", "--database-url", url,
          "--database-password-file", password, "--database-ca-file", server.caPath, "--database-timeout", "2s",
        ], environment: key.environment)
    }
    let missing = try serve(uniqueRowID(), url: server.url())
    #expect(missing.status == 64)
    #expect(missing.stderr.contains("no active row"))
    let down = try serve(uniqueRowID(), url: "postgres://authproxy@127.0.0.1:\(freePort())/app")
    #expect(down.status == 69)
    #expect(down.stderr.contains("cannot reach the database"))
    let wrongPassword = try runBinary(
      [
        "serve", "--upstream", "https://127.0.0.1:9", "--credentials", "db:1", "--database-url",
        "postgres://authproxy:in-the-flag@127.0.0.1:\(server.port)/app",
      ], environment: key.environment)
    #expect(wrongPassword.status == 64)
    #expect(wrongPassword.stderr.contains("every user of this host sees in ps"))
    #expect(!wrongPassword.stderr.contains("in-the-flag"))
    let badURL = try runBinary(
      ["serve", "--upstream", "https://127.0.0.1:9", "--credentials", "db:1", "--database-url", "postgress://x"],
      environment: key.environment)
    #expect(badURL.status == 64)
    #expect(badURL.stderr.contains("must start with postgres:// or mysql://"))
  }
}

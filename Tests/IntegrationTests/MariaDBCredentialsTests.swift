import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// One TLS server (require_secure_transport) and one that offers no TLS, shared by the suite's
/// tests; each test uses rows of its own, so they run in parallel.
private let tlsMariaDB = Result { try MariaDBServer() }
private let plainMariaDB = Result { try MariaDBServer(tls: false) }

/// `--credentials db:ID` against a real MariaDB through Connector/C (issue 19).
@Suite(.enabled(if: MariaDBServer.unavailable == nil, "\(MariaDBServer.unavailable ?? "")"))
struct MariaDBCredentialsTests {
  let demo = SandboxAPI.demoUsers[0]
  let demoRotated = SandboxAPI.demoUsers[1]
  let key = TestKey()

  func settings(_ server: MariaDBServer, password: String? = nil, ca: String? = nil, url: String? = nil) throws -> DatabaseSettings {
    try databaseSettings([
      "database-url": url ?? server.url(), "database-password-file": try secretFile(password ?? server.appPassword),
      "database-ca-file": ca ?? server.caPath, "database-timeout": "5s",
    ])
  }

  @Test func readsTheActiveRowOverVerifiedTLS() throws {
    let server = try tlsMariaDB.get()
    let id = uniqueRowID()
    try server.put(id: id, sealed: try key.seal(demo))
    let credentials = try key.load(id, try settings(server))
    #expect(credentials.username == demo.username)
    #expect(credentials.password.reveal == demo.password)
    // require_secure_transport: the read above could not have been plain.
    #expect(try server.admin("SELECT @@require_secure_transport") == "1")
  }

  @Test func aRowSealedByPHPsOpensslEncryptOpensUnchanged() throws {
    let server = try tlsMariaDB.get()
    let sealed = try #require(try key.sealWithPHP(demo), "php-cli is not installed: run ./scripts/install-deps")
    let id = uniqueRowID()
    try server.put(id: id, sealed: sealed)
    #expect(try key.load(id, try settings(server)).password.reveal == demo.password)
  }

  @Test func theIDIsAParameterNotSQL() throws {
    let server = try tlsMariaDB.get()
    let id = uniqueRowID()
    try server.put(id: id, sealed: try key.seal(demo))
    // Spliced into the SQL, this would match every active row.
    let database = try settings(server)
    var injected: CredentialError?
    do {
      _ = try CredentialSource.load(.database(id: "0 OR 1=1"), environment: key.environment, database: database)
    } catch {
      injected = error
    }
    let error = try #require(injected)
    #expect(error.description.contains("no active row with id = 0 OR 1=1"))
  }

  @Test func aMissingOrInactiveRowNamesTheCauseAndTheFix() throws {
    let server = try tlsMariaDB.get()
    let id = uniqueRowID()
    let missing = try #require(key.loadError(id, try settings(server)))
    #expect(missing.kind == .invalid)
    #expect(missing.description.contains("no active row with id = \(id)"))
    try server.put(id: id, sealed: try key.seal(demo), active: false)
    let inactive = try #require(key.loadError(id, try settings(server)))
    #expect(inactive.description.contains("set active = 1"))
  }

  @Test func aWrongKeyAndAnUnsealedValueAreTold() throws {
    let server = try tlsMariaDB.get()
    let id = uniqueRowID()
    try server.put(id: id, sealed: try key.seal(demo))
    let wrongKey = try #require(TestKey().loadError(id, try settings(server)))
    #expect(wrongKey.description.contains("ENCRYPTION_KEY is not the key it was sealed with"))
    try server.put(id: id, sealed: "not sealed at all")
    let unsealed = try #require(key.loadError(id, try settings(server)))
    #expect(unsealed.description.contains("is not sealed credentials"))
  }

  @Test func aRefusedPasswordNamesWhereThePasswordComesFrom() throws {
    let server = try tlsMariaDB.get()
    let error = try #require(key.loadError(uniqueRowID(), try settings(server, password: "not-the-db-password")))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("refused the login"))
    #expect(!error.description.contains("not-the-db-password"))
  }

  @Test func aCertificateFromAnotherCAIsRefused() throws {
    let server = try tlsMariaDB.get()
    let other = temporaryDirectory("other-ca")
    try ThrowawayPKI.make(in: other, caName: "some other CA")
    let error = try #require(key.loadError(uniqueRowID(), try settings(server, ca: other + "/ca.pem")))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("not trusted"))
  }

  @Test func aServerOfferingNoTLSIsAClearErrorUnlessALoopbackURLOptsOut() throws {
    let server = try plainMariaDB.get()
    let id = uniqueRowID()
    try server.put(id: id, sealed: try key.seal(demo))
    let error = try #require(key.loadError(id, try settings(server)))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("offers no TLS"))
    #expect(try key.load(id, try settings(server, url: server.url(query: "ssl-mode=DISABLED"))).username == demo.username)
  }

  @Test func aDatabaseThatIsDownIsUnreachable() throws {
    let server = try tlsMariaDB.get()
    let error = try #require(key.loadError(uniqueRowID(), try settings(server, url: "mysql://authproxy@127.0.0.1:\(freePort())/app")))
    #expect(error.kind == .unreachable)
  }

  @Test func aServerThatNeverAnswersTimesOut() throws {
    let silent = try SilentListener()
    let settings = try databaseSettings(["database-url": "mysql://authproxy@127.0.0.1:\(silent.port)/app", "database-timeout": "1s"])
    let started = Date()
    let error = try #require(key.loadError(uniqueRowID(), settings))
    #expect(error.kind == .unreachable)
    #expect(Date().timeIntervalSince(started) < 10)
  }
}

/// The `db:` source through the real binary with MySQL/MariaDB.
@Suite(.enabled(if: MariaDBServer.unavailable == nil, "\(MariaDBServer.unavailable ?? "")"))
struct MariaDBCommandLineTests {
  let demo = SandboxAPI.demoUsers[0]
  let key = TestKey()

  @Test func checkCredentialsTakesTheDatabasePasswordFromMYSQL_PWD() throws {
    let server = try tlsMariaDB.get()
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let id = uniqueRowID()
    try server.put(id: id, sealed: try key.seal(demo))
    let arguments = [
      "check-credentials", "--upstream", sandbox.baseURL, "--ca-file", sandbox.caPath, "--credentials", "db:\(id)",
      "--database-url", server.url(), "--database-ca-file", server.caPath,
    ]
    let run = try runBinary(arguments, environment: key.environment.merging(["MYSQL_PWD": server.appPassword]) { a, _ in a })
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stdout.contains("ok: logged in as '\(demo.username)'"))
    let refused = try runBinary(arguments, environment: key.environment.merging(["MYSQL_PWD": "wrong-db-password"]) { a, _ in a })
    #expect(refused.status == 64)
    #expect(refused.stderr.contains("refused the login"))
    #expect(!refused.stderr.contains("wrong-db-password"))
  }
}

/// Rotation by UPDATE and a restart, against a MariaDB of the test's own.
@Suite(.serialized, .enabled(if: MariaDBServer.unavailable == nil, "\(MariaDBServer.unavailable ?? "")"))
struct MariaDBRotationTests {
  let demo = SandboxAPI.demoUsers[0]
  let demoRotated = SandboxAPI.demoUsers[1]
  let key = TestKey()

  @Test func anUpdatedRowIsSwitchedToAndARestartedDatabaseIsReadAgain() throws {
    let server = try MariaDBServer()
    let id = uniqueRowID()
    try server.put(id: id, sealed: try key.seal(demo))
    let settings = try databaseSettings([
      "database-url": server.url(), "database-password-file": try secretFile(server.appPassword), "database-ca-file": server.caPath,
      "database-timeout": "2s",
    ])
    let proxy = try ProxyHarness(loader: DatabaseLoader(id: id, key: key, settings: settings).loader(pollInterval: 0.2))
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    let load = LoadGenerator(port: proxy.port, threads: 2, pause: 5_000)
    try server.put(id: id, sealed: try key.seal(demoRotated))
    #expect(eventually { proxy.sandbox.counters.logins == 2 })
    #expect(eventually { proxy.logs.all.contains { $0.contains("same client") } })

    server.stop()
    #expect(
      eventually(timeout: 20) {
        (metric((try? proxy.admin("/metrics").text) ?? "", "authproxy_credential_source_failures_total") ?? 0) >= 3
      })
    #expect(try proxy.admin("/readyz").status == 200)
    try server.start()
    try server.put(id: id, sealed: try key.seal(demo))
    #expect(eventually(timeout: 20) { proxy.sandbox.counters.logins == 3 })
    let statuses = load.stop()
    #expect(statuses.count > 20)
    #expect(statuses.allSatisfy { $0 == 200 }, "failed: \(statuses.filter { $0 != 200 })")
    let metrics = try proxy.admin("/metrics").text
    #expect(metric(metrics, "authproxy_rotations_total", "result=\"success\"") == 2)
  }
}

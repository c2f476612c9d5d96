import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// Rotation of a `db:` source against a real PostgreSQL: a row changed by UPDATE is tested with
/// a login and switched to only if it works; a database that goes away never stops the proxy.
/// Each test has a server of its own (one of them is stopped and restarted).
@Suite(.serialized, .enabled(if: PostgresServer.unavailable == nil, "\(PostgresServer.unavailable ?? "")"))
struct PostgresRotationTests {
  let demo = SandboxAPI.demoUsers[0]
  let demoRotated = SandboxAPI.demoUsers[1]
  let key = TestKey()

  func start(_ server: PostgresServer, id: Int, poll: Double) throws -> (ProxyHarness, DatabaseLoader) {
    try server.put(id: id, sealed: try key.seal(demo))
    let settings = try databaseSettings([
      "database-url": server.url(), "database-password-file": try secretFile(server.appPassword), "database-ca-file": server.caPath,
      "database-timeout": "2s",
    ])
    let database = DatabaseLoader(id: id, key: key, settings: settings)
    let proxy = try ProxyHarness(loader: database.loader(pollInterval: poll))
    return (proxy, database)
  }

  @Test func anUpdatedRowIsTestedWithALoginAndSwitchedToUnderLoad() throws {
    let server = try PostgresServer()
    let id = uniqueRowID()
    let (proxy, _) = try start(server, id: id, poll: 0.2)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    let load = LoadGenerator(port: proxy.port, threads: 2, pause: 5_000)
    #expect(eventually { load.count >= 20 })
    try server.put(id: id, sealed: try key.seal(demoRotated))
    #expect(eventually { proxy.sandbox.counters.logins == 2 })
    #expect(eventually { proxy.logs.all.contains { $0.contains("same client") } })
    let after = load.count
    #expect(eventually { load.count >= after + 20 })
    let statuses = load.stop()
    #expect(statuses.allSatisfy { $0 == 200 }, "failed: \(statuses.filter { $0 != 200 })")
    let metrics = try proxy.admin("/metrics").text
    #expect(metric(metrics, "authproxy_rotations_total", "result=\"success\"") == 1)
    // Polls that found the same row are not rotations.
    #expect(metric(metrics, "authproxy_rotations_total", "result=\"failure\"") == 0)
    #expect(!proxy.logs.all.joined().contains(demoRotated.password))
  }

  @Test func anUpdatedRowTheAPIRefusesKeepsTheOldCredentialsAndAlerts() throws {
    let server = try PostgresServer()
    let id = uniqueRowID()
    let (proxy, _) = try start(server, id: id, poll: 0.2)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    try server.put(id: id, sealed: try key.seal(username: demo.username, password: "a-wrong-new-password"))
    #expect(eventually { proxy.logs.all.contains { $0.contains("rotation_failure") } })
    #expect(try proxy.get("/api/v1/echo").status == 200)
    #expect(proxy.sandbox.counters.logins == 1)
    let metrics = try proxy.admin("/metrics").text
    #expect((metric(metrics, "authproxy_rotations_total", "result=\"failure\"") ?? 0) >= 1)
    #expect(metric(metrics, "authproxy_alerts_total", "rule=\"rotation_failure\"") == 1)
    #expect(!proxy.logs.all.joined().contains("a-wrong-new-password"))
  }

  @Test func aReloadReadsTheRowAtOnceWithoutWaitingForThePoll() throws {
    let server = try PostgresServer()
    let id = uniqueRowID()
    let (proxy, _) = try start(server, id: id, poll: 3600)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    try server.put(id: id, sealed: try key.seal(demoRotated))
    // The runtime's reloadCredentials() is what SIGHUP does.
    proxy.runtime.reloadCredentials()
    #expect(eventually { proxy.sandbox.counters.logins == 2 })
    #expect(eventually { proxy.logs.all.contains { $0.contains("credentials changed (reload requested)") } })
  }

  @Test func aDatabaseStoppedAndRestartedWhileTheProxyServes() throws {
    let server = try PostgresServer()
    let id = uniqueRowID()
    let (proxy, _) = try start(server, id: id, poll: 0.2)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    let load = LoadGenerator(port: proxy.port, threads: 2, pause: 5_000)
    server.stop()
    // Reads fail and are retried with backoff (1 s, 2 s, … capped at the poll interval here).
    #expect(
      eventually(timeout: 20) {
        (metric((try? proxy.admin("/metrics").text) ?? "", "authproxy_credential_source_failures_total") ?? 0) >= 3
      })
    #expect(proxy.logs.all.contains { $0.contains("cannot reach the database") })
    let ready = try proxy.admin("/readyz")
    #expect(ready.status == 200, "the token held keeps serving")
    #expect(!ready.text.contains("database"), "the database is named only while no token is held")
    #expect(metric(try proxy.admin("/metrics").text, "authproxy_alerts_total", "rule=\"rotation_failure\"") == 0)
    let whileDown = load.stop()
    #expect(whileDown.count > 20)
    #expect(whileDown.allSatisfy { $0 == 200 }, "failed while the database was down: \(whileDown.filter { $0 != 200 })")

    // No token and no database: /readyz says both.
    proxy.sandbox.failLogins(.invalidCredentials)
    proxy.sandbox.revokeAllTokens()
    _ = try? proxy.get("/api/v1/echo")
    #expect(
      eventually(timeout: 20) {
        let answer = try? proxy.admin("/readyz")
        return answer?.status == 503 && answer?.text.contains("cannot reach the database") == true
      })
    proxy.sandbox.failLogins(nil)

    try server.start()
    try server.put(id: id, sealed: try key.seal(demoRotated))
    #expect(eventually(timeout: 20) { proxy.logs.all.contains { $0.contains("credentials changed (--credentials-poll)") } })
    #expect(eventually(timeout: 20) { (try? proxy.admin("/readyz"))?.status == 200 })
    #expect(!(try proxy.admin("/readyz")).text.contains("database"))
    #expect(try proxy.get("/api/v1/echo").status == 200)
  }

  @Test func aDatabaseThatHangsNeverStallsTheEventLoops() throws {
    let server = try PostgresServer()
    let id = uniqueRowID()
    let (proxy, database) = try start(server, id: id, poll: 0.2)
    defer { proxy.stop() }
    let silent = try SilentListener()
    database.set(try databaseSettings(["database-url": "postgres://authproxy@127.0.0.1:\(silent.port)/app", "database-timeout": "5s"]))
    // A read is now stuck in its connection to a server that never answers...
    #expect(silent.hasPendingConnection(timeout: 10))
    // ...and requests are served meanwhile: had the read run on an event loop (or the admin
    // listener's), they would have waited for its deadline, whose log line would be there first.
    for _ in 0..<20 { #expect(try proxy.get("/api/v1/echo").status == 200) }
    #expect(try proxy.admin("/readyz").status == 200)
    #expect(!proxy.logs.all.contains { $0.contains("no connection within") }, "the read ended before the requests were served")
    // The hung read ends at its deadline, as an unreachable database.
    #expect(eventually(timeout: 15) { proxy.logs.all.contains { $0.contains("no connection within 5s") } })
  }
}

import AuthProxy
import Foundation
import SandboxAPI
import Synchronization
import Testing
import TestSupport

/// Sends requests from `threads` threads until `stop` is set; collects every status.
final class LoadGenerator: @unchecked Sendable {
  private let statuses = Mutex<[Int]>([])
  private let running = Atomic<Bool>(true)
  private let slowest = Mutex<Double>(0)
  private var threads: [Thread] = []

  /// `pause` between requests keeps a long run from exhausting loopback's ephemeral ports
  /// (every request is a new connection, left in TIME_WAIT).
  init(port: Int, threads count: Int = 4, target: String = "/api/v1/echo", pause: useconds_t = 0) {
    for _ in 0..<count {
      let thread = Thread { [self] in
        while running.load(ordering: .relaxed) {
          let started = Date()
          let status = (try? request(port: port, target: target).status) ?? -1
          let took = Date().timeIntervalSince(started)
          statuses.withLock { $0.append(status) }
          slowest.withLock { $0 = max($0, took) }
          if pause > 0 { usleep(pause) }
        }
      }
      threads.append(thread)
      thread.start()
    }
  }

  /// Stops the load and returns every status seen.
  func stop() -> [Int] {
    running.store(false, ordering: .relaxed)
    while threads.contains(where: { !$0.isFinished }) { usleep(10_000) }
    return statuses.withLock { $0 }
  }

  var count: Int { statuses.withLock { $0.count } }
  /// The longest a request took, in seconds.
  var slowestSeconds: Double { slowest.withLock { $0 } }
}

/// Credentials that a test can change, as an operator changes a Secret.
final class RotatingCredentials: Sendable {
  private let current: Mutex<Credentials>
  init(_ user: SandboxUser) { current = Mutex(Credentials(username: user.username, password: Secret(user.password))) }
  func set(_ user: SandboxUser) { current.withLock { $0 = Credentials(username: user.username, password: Secret(user.password)) } }
  func set(username: String, password: String) { current.withLock { $0 = Credentials(username: username, password: Secret(password)) } }
  var loader: CredentialLoader { CredentialLoader { [self] in current.withLock { $0 } } }
}

/// The token and credential lifecycle (issue 3): revocation, rotation, backoff, shutdown.
@Suite(.serialized) struct TokenLifecycleTests {
  let demo = SandboxAPI.demoUsers[0]
  let demoRotated = SandboxAPI.demoUsers[1]
  let other = SandboxAPI.demoUsers[2]

  @Test func aServerSideRevokeUnderTwentyConcurrentRequestsCostsOneLoginAndFailsNone() throws {
    let proxy = try ProxyHarness()
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    proxy.sandbox.revokeAllTokens()
    var connections: [RawConnection] = []
    for i in 0..<20 {
      let connection = try RawConnection(port: proxy.port)
      try connection.send(requestBytes(method: "POST", target: "/api/v1/echo?i=\(i)", body: Array("payload-\(i)".utf8)))
      connections.append(connection)
    }
    let responses = try connections.map { try $0.readResponse() }
    #expect(responses.allSatisfy { $0.status == 200 }, "\(responses.map(\.status))")
    for (i, response) in responses.enumerated() {
      #expect(response.json?["body_base64"] as? String == Data("payload-\(i)".utf8).base64EncodedString(), "the replay keeps the body")
    }
    let counters = proxy.sandbox.counters
    #expect(counters.logins == 2, "one login for all twenty (refresh tokens were revoked too)")
    #expect(counters.failedRefreshes <= 1)
    // Each was either sent with the revoked token and replayed once with the new one, or sent
    // after the new token came (how many of each depends on how fast the API answers); the
    // first one sent met the revoke.
    let lines = proxy.accessLog(count: 21).filter {
      ($0["path"] as? String)?.hasPrefix("/api/v1/echo") == true && $0["method"] as? String == "POST"
    }
    #expect(lines.count == 20)
    let replayed = lines.filter { $0["reauth"] as? Bool == true }
    #expect(replayed.count >= 1)
    #expect(replayed.allSatisfy { $0["attempts"] as? Int == 2 && $0["status"] as? Int == 200 })
    #expect(lines.filter { $0["reauth"] as? Bool != true }.allSatisfy { $0["attempts"] as? Int == 1 && $0["status"] as? Int == 200 })
  }

  @Test func aRotationUnderLoadFailsNoRequestAndDropsTheOldTokensOfTheSameClient() throws {
    let credentials = RotatingCredentials(demo)
    let proxy = try ProxyHarness(loader: credentials.loader)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    let load = LoadGenerator(port: proxy.port)
    #expect(eventually { load.count >= 20 })
    credentials.set(demoRotated)
    proxy.runtime.reloadCredentials()
    #expect(eventually { proxy.sandbox.counters.logins == 2 })
    let after = load.count
    #expect(eventually { load.count >= after + 20 })
    let statuses = load.stop()
    #expect(statuses.allSatisfy { $0 == 200 }, "failed: \(statuses.filter { $0 != 200 })")
    #expect(proxy.sandbox.counters.logouts == 0, "same client: a logout would revoke the new tokens too")
    #expect(proxy.logs.all.contains { $0.contains("same client") })
  }

  @Test func aRotationToAnotherClientLogsTheOldOneOut() throws {
    let credentials = RotatingCredentials(demo)
    let proxy = try ProxyHarness(loader: credentials.loader)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").json?["client_id"] as? Int == 123456)
    credentials.set(other)
    proxy.runtime.reloadCredentials()
    #expect(eventually { proxy.sandbox.counters.logouts == 1 })
    #expect(try proxy.get("/api/v1/echo").json?["client_id"] as? Int == 654321)
    #expect(
      eventually { ((try? proxy.admin("/metrics").text) ?? "").contains(#"authproxy_logouts_total{result="success"} 1"#) },
      "the rotation's logout is counted")
  }

  @Test func aRotationWhenTheAPINamesNoClientNeverLogsOut() throws {
    let credentials = RotatingCredentials(demo)
    let proxy = try ProxyHarness(loader: credentials.loader)
    defer { proxy.stop() }
    proxy.sandbox.setClientIDForm(.absent)
    #expect(try proxy.get("/api/v1/echo").status == 200)
    credentials.set(other)
    proxy.runtime.reloadCredentials()
    #expect(eventually { proxy.sandbox.counters.logins == 2 })
    #expect(try eventually { try proxy.get("/api/v1/echo").json?["client_id"] as? Int == 654321 })
    // Another client in truth, but the answers did not say so: a logout might have revoked the new tokens.
    #expect(proxy.sandbox.counters.logouts == 0)
    #expect(proxy.logs.all.contains { $0.contains("did not name the client") })
  }

  @Test func aStringClientIDIsReadAsTheSameClient() throws {
    let credentials = RotatingCredentials(demo)
    let proxy = try ProxyHarness(loader: credentials.loader)
    defer { proxy.stop() }
    proxy.sandbox.setClientIDForm(.string)
    #expect(try proxy.get("/api/v1/echo").status == 200)
    credentials.set(demoRotated)
    proxy.runtime.reloadCredentials()
    #expect(eventually { proxy.logs.all.contains { $0.contains("same client") } })
    #expect(proxy.sandbox.counters.logouts == 0)
  }

  @Test func aRotationWhoseLoginFailsKeepsTheOldCredentialsAndSaysSo() throws {
    let credentials = RotatingCredentials(demo)
    let proxy = try ProxyHarness(loader: credentials.loader)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    credentials.set(username: "demo", password: "a-wrong-new-password")
    proxy.runtime.reloadCredentials()
    #expect(eventually { proxy.logs.all.contains { $0.contains("rotation_failure") } })
    #expect(try proxy.get("/api/v1/echo").status == 200)
    #expect(proxy.sandbox.counters.logins == 1)
    #expect(!proxy.logs.all.joined().contains("a-wrong-new-password"))
  }

  @Test func rateLimitedLoginsHonourRetryAfter() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    sandbox.failLogins(.rateLimited(retryAfterSeconds: 3))
    let proxy = try ProxyHarness(sandbox: sandbox)
    defer { proxy.stop() }
    #expect(eventually { proxy.sandbox.counters.failedLogins == 1 })
    let response = try proxy.get("/api/v1/echo")
    #expect(response.status == 503)
    #expect(response.errorMessage?.contains("rate limited") == true)
    let start = Date()
    sandbox.failLogins(nil)
    #expect(eventually(timeout: 10) { (try? proxy.get("/api/v1/echo").status) == 200 })
    #expect(Date().timeIntervalSince(start) > 1.5, "the next login waited for Retry-After")
    #expect(proxy.sandbox.counters.failedLogins == 1)
  }

  @Test func anIPWhitelistRefusalIsNamedInTheAnswerAndTheLog() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    sandbox.failLogins(.ipNotWhitelisted)
    let proxy = try ProxyHarness(sandbox: sandbox)
    defer { proxy.stop() }
    #expect(eventually { proxy.sandbox.counters.failedLogins >= 1 })
    let response = try proxy.get("/api/v1/echo")
    #expect(response.status == 503)
    #expect(response.errorMessage?.contains("IP address not authorized") == true)
    #expect(proxy.logs.all.contains { $0.contains("IP address not authorized") })
    #expect(try proxy.admin("/readyz").text.contains("IP address not authorized"))
  }

  @Test func anExpiredRefreshTokenMeansLoginNotRefresh() throws {
    let proxy = try ProxyHarness(accessLifetime: 3, refreshLifetime: 1)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    #expect(eventually { proxy.sandbox.counters.logins >= 2 })
    #expect(try proxy.get("/api/v1/echo").status == 200)
    #expect(proxy.sandbox.counters.refreshes == 0)
    #expect(proxy.sandbox.counters.failedRefreshes == 0, "an expired refresh token is never sent")
  }

  @Test func shutdownLetsFiftyInFlightRequestsFinishAndRefusesNewConnections() throws {
    let proxy = try ProxyHarness(flags: ["drain-timeout": "10s"])
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    var connections: [RawConnection] = []
    for _ in 0..<50 {
      let connection = try RawConnection(port: proxy.port)
      try connection.send(requestBytes(method: "GET", target: "/api/v1/slow?ms=700"))
      connections.append(connection)
    }
    #expect(eventually { proxy.sandbox.counters.apiRequests >= 51 })
    let started = Date()
    proxy.runtime.shutdown()
    let statuses = try connections.map { try $0.readResponse().status }
    #expect(statuses.allSatisfy { $0 == 200 }, "\(statuses)")
    #expect(eventually { (try? RawConnection(port: proxy.port)) == nil }, "new connections are refused")
    proxy.runtime.wait()
    #expect(Date().timeIntervalSince(started) < 10)
    #expect(proxy.sandbox.counters.logouts == 0, "no logout on exit by default")
  }

  @Test func logoutOnExitRevokesTheTokensOnlyWhenAsked() throws {
    let proxy = try ProxyHarness(flags: ["logout-on-exit": "true"])
    #expect(try proxy.get("/api/v1/echo").status == 200)
    proxy.stop()
    #expect(proxy.sandbox.counters.logouts == 1)
  }
}

extension TokenLifecycleTests {
  @Test func credentialsOlderThan90DaysAreWarnedAboutAtStartUp() throws {
    let old = CredentialLoader {
      Credentials(username: "demo", password: Secret("demo-password"), rotatedAt: Date().timeIntervalSince1970 - 91 * 86400)
    }
    let proxy = try ProxyHarness(loader: old)
    defer { proxy.stop() }
    #expect(eventually { proxy.logs.all.contains { $0.contains("91 days old") } })
    let fresh = CredentialLoader {
      Credentials(username: "demo", password: Secret("demo-password"), rotatedAt: Date().timeIntervalSince1970 - 10 * 86400)
    }
    let young = try ProxyHarness(loader: fresh)
    defer { young.stop() }
    #expect(try young.get("/api/v1/echo").status == 200)
    #expect(!young.logs.all.contains { $0.contains("days old") })
  }
}

import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// Self-hosted high availability (issue 20): a master, a replica and three Sentinels; the
/// master is killed under load, the Sentinels promote the replica, and the proxies follow.
@Suite(.serialized) struct RedisSentinelTests {
  let key = Data((0..<32).map { UInt8($0 &* 7 &+ 3) }).base64EncodedString()

  private func storeIsUp(_ proxy: ProxyHarness) -> Bool {
    ((try? proxy.admin("/metrics").text) ?? "").contains("authproxy_token_store_up 1")
  }

  @Test func followsAFailoverUnderLoadWithoutAFailedRequestOrARefreshTokenSpentTwice() throws {
    let redis = try SentinelSet()
    #expect(eventually(timeout: 30) { redis.isReadyForFailover() }, "the Sentinels know the replica and each other")
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    // Refreshed every 10 s; an outage shorter than the 5 s margin is waited out, not renewed alone.
    sandbox.setLifetimes(access: 20, refresh: 3600)
    let proxies = try (0..<2).map { _ in
      try ProxyHarness(
        workers: 1, flags: ["token-store": redis.url, "token-store-timeout": "500ms"], sandbox: sandbox,
        environment: ["ENCRYPTION_KEY": key])
    }
    defer { proxies.forEach { $0.stop() } }
    #expect(eventually { proxies.allSatisfy(storeIsUp) })
    #expect(try proxies[0].get("/api/v1/echo").status == 200)
    #expect(
      eventually { (try? redis.replica.cli(["--scan"]))?.contains("authproxy:v1:token:") == true }, "the token reached the replica")
    let loads = proxies.map { LoadGenerator(port: $0.port, threads: 2, pause: 10_000) }
    #expect(eventually { loads.allSatisfy { $0.count > 10 } })

    redis.master.kill()
    #expect(eventually(timeout: 30) { redis.masterPort() == redis.replica.port }, "the Sentinels promoted the replica")
    #expect(eventually(timeout: 15) { proxies.allSatisfy(storeIsUp) }, "the proxies found the new master without a restart")
    #expect(proxies.allSatisfy { $0.logs.all.contains { $0.contains("Redis failover: the Sentinels name a new master") } })
    // Keep the load on across refreshes made through the new master.
    let refreshesBefore = sandbox.counters.refreshes
    #expect(eventually(timeout: 30) { sandbox.counters.refreshes >= refreshesBefore + 2 }, "refreshed after the failover")
    let statuses = loads.flatMap { $0.stop() }
    #expect(statuses.count > 100)
    #expect(statuses.allSatisfy { $0 == 200 }, "\(statuses.filter { $0 != 200 })")
    let counters = sandbox.counters
    #expect(counters.failedRefreshes == 0, "no refresh token was spent twice")
    #expect(counters.logins == 1)
    #expect(counters.unauthorizedAPIRequests == 0)
    #expect((try? redis.replica.cli(["--scan"]))?.contains("authproxy:v1:token:") == true, "the new master holds the token")
  }

  @Test func overTLSFindsTheMasterAndFollowsAFailover() throws {
    let redis = try SentinelSet(tls: true)
    #expect(eventually(timeout: 30) { redis.isReadyForFailover() }, "the Sentinels know the replica and each other")
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let proxies = try (0..<2).map { _ in
      try ProxyHarness(
        workers: 1, flags: ["token-store": redis.url, "token-store-ca-file": redis.master.caPath], sandbox: sandbox,
        environment: ["ENCRYPTION_KEY": key])
    }
    defer { proxies.forEach { $0.stop() } }
    #expect(eventually { proxies.allSatisfy(storeIsUp) })
    for proxy in proxies { #expect(try proxy.get("/api/v1/echo").status == 200) }
    #expect(sandbox.counters.logins == 1)
    redis.master.kill()
    #expect(eventually(timeout: 30) { redis.masterPort() == redis.replica.port }, "the Sentinels promoted the replica")
    #expect(eventually(timeout: 15) { proxies.allSatisfy { $0.logs.all.contains { $0.contains("Redis failover") } } })
    #expect(eventually { proxies.allSatisfy(storeIsUp) })
  }

  @Test func aSentinelThatIsDownIsSkipped() throws {
    let redis = try SentinelSet()
    redis.sentinels[0].kill()
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let proxy = try ProxyHarness(workers: 1, flags: ["token-store": redis.url], sandbox: sandbox, environment: ["ENCRYPTION_KEY": key])
    defer { proxy.stop() }
    #expect(eventually { storeIsUp(proxy) })
    #expect(try proxy.get("/api/v1/echo").status == 200)
    #expect(eventually { (try? redis.master.cli(["--scan"]))?.contains("authproxy:v1:token:") == true }, "written to the master")
  }
}

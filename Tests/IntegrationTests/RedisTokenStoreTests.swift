import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// Many replicas, one identity (issue 6): three proxies share one token pair through a real Redis.
@Suite(.serialized) struct RedisTokenStoreTests {
  let key = Data((0..<32).map { UInt8($0 &* 7 &+ 3) }).base64EncodedString()

  func replicas(_ count: Int, sandbox: SandboxAPI, redis: RedisServer, flags: [String: String] = [:]) throws -> [ProxyHarness] {
    try (0..<count).map { _ in
      try ProxyHarness(
        workers: 1, flags: ["token-store": redis.url].merging(flags) { $1 }, sandbox: sandbox, environment: ["ENCRYPTION_KEY": key])
    }
  }

  @Test func threeReplicasAndSixtyConcurrentFirstRequestsCostOneLogin() throws {
    let redis = try RedisServer()
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    sandbox.setLoginDelay(0.5)
    let proxies = try replicas(3, sandbox: sandbox, redis: redis)
    defer { proxies.forEach { $0.stop() } }
    var connections: [RawConnection] = []
    for i in 0..<60 {
      let connection = try RawConnection(port: proxies[i % 3].port)
      try connection.send(requestBytes(method: "GET", target: "/api/v1/echo?i=\(i)"))
      connections.append(connection)
    }
    let statuses = try connections.map { try $0.readResponse().status }
    #expect(statuses.allSatisfy { $0 == 200 }, "\(statuses.filter { $0 != 200 })")
    #expect(sandbox.counters.logins == 1)
    #expect(sandbox.counters.failedLogins == 0)
  }

  @Test func redisHoldsNoPlaintextTokenAndNoUsernameInKeys() throws {
    let redis = try RedisServer()
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let proxies = try replicas(1, sandbox: sandbox, redis: redis)
    defer { proxies.forEach { $0.stop() } }
    #expect(try proxies[0].get("/api/v1/echo").status == 200)
    #expect(eventually { (try? redis.cli(["--scan"]))?.isEmpty == false })
    let keys = try redis.cli(["--scan"]).split(separator: "\n").map(String.init)
    #expect(!keys.isEmpty)
    for key in keys {
      #expect(!key.contains("demo"), "the key name holds no username")
      let value = try redis.cli(["GET", key])
      for secret in sandbox.issuedSecrets + [SandboxAPI.demoUsers[0].password] {
        #expect(!value.contains(secret), "a stored value holds a plaintext secret")
      }
      let ttl = Int(try redis.cli(["PTTL", key])) ?? -1
      if !key.hasSuffix(":lock") {
        #expect(ttl > 7 * 86400 * 1000 - 60_000, "TTL is the refresh lifetime plus 5 minutes")
      }
    }
  }

  @Test func servingGoesOnWhileRedisIsDownAndSharingResumesAfter() throws {
    let redis = try RedisServer()
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    sandbox.setLifetimes(access: 2, refresh: 3600)
    let proxies = try replicas(2, sandbox: sandbox, redis: redis)
    defer { proxies.forEach { $0.stop() } }
    #expect(try proxies[0].get("/api/v1/echo").status == 200)
    let loads = proxies.map { LoadGenerator(port: $0.port, threads: 1) }
    #expect(eventually { loads.allSatisfy { $0.count > 5 } })
    redis.kill()
    let refreshesBefore = sandbox.counters.refreshes
    #expect(eventually(timeout: 10) { sandbox.counters.refreshes >= refreshesBefore + 2 }, "tokens renewed without Redis")
    try redis.start()
    #expect(eventually(timeout: 15) { (try? redis.cli(["--scan"]))?.contains("authproxy:v1:token:") == true }, "sharing resumes")
    let statuses = loads.flatMap { $0.stop() }
    #expect(statuses.allSatisfy { $0 == 200 }, "\(statuses.filter { $0 != 200 })")
    #expect(proxies.allSatisfy { (try? $0.admin("/readyz").status) == 200 })
    #expect(proxies[0].logs.all.contains { $0.contains("on our own") })
  }

  @Test func aSharedStoreNeedsTheEncryptionKeyAndSkipsLogoutOnExit() throws {
    let redis = try RedisServer()
    let missing = ServeConfig.load(flags: ["upstream": "https://api.example.com", "token-store": redis.url], environment: [:])
    guard case .failure(let errors) = missing else {
      Issue.record("a Redis store without ENCRYPTION_KEY was accepted")
      return
    }
    #expect(errors.description.contains("ENCRYPTION_KEY"))
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let proxies = try replicas(1, sandbox: sandbox, redis: redis, flags: ["logout-on-exit": "true"])
    #expect(try proxies[0].get("/api/v1/echo").status == 200)
    proxies[0].stop()
    #expect(sandbox.counters.logouts == 0)
    #expect(proxies[0].logs.all.contains { $0.contains("--logout-on-exit skipped") })
  }
}

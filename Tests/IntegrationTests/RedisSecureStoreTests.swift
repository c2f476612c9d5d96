import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// Redis as managed services run it (issue 20): TLS with the certificate and name verified,
/// client certificates, ACL users, a password from a file. Real `redis-server`s on loopback.
@Suite(.serialized) struct RedisSecureStoreTests {
  let key = Data((0..<32).map { UInt8($0 &* 7 &+ 3) }).base64EncodedString()

  private func replicas(
    _ count: Int, sandbox: SandboxAPI, store: String, flags: [String: String] = [:], environment: [String: String] = [:]
  ) throws -> [ProxyHarness] {
    try (0..<count).map { _ in
      try ProxyHarness(
        workers: 1, flags: ["token-store": store].merging(flags) { $1 }, sandbox: sandbox,
        environment: ["ENCRYPTION_KEY": key].merging(environment) { $1 })
    }
  }

  private func storeIsUp(_ proxy: ProxyHarness) -> Bool {
    ((try? proxy.admin("/metrics").text) ?? "").contains("authproxy_token_store_up 1")
  }

  private func sharedOneLogin(_ proxies: [ProxyHarness], _ sandbox: SandboxAPI, _ redis: RedisServer) throws {
    #expect(eventually { proxies.allSatisfy(storeIsUp) }, "every replica connected")
    for proxy in proxies { #expect(try proxy.get("/api/v1/echo").status == 200) }
    #expect(sandbox.counters.logins == 1, "the replicas shared one login through Redis")
    #expect(eventually { (try? redis.cli(["--scan"]))?.contains("authproxy:v1:token:") == true })
  }

  @Test func tlsVerifiesTheCertificateAndNameAndSharesTheToken() throws {
    let redis = try RedisServer(RedisServer.Options(tls: true))
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    // By name (SNI and the DNS SAN) and by address (the IP SAN).
    let byName = try replicas(
      2, sandbox: sandbox, store: "rediss://localhost:\(redis.port)", flags: ["token-store-ca-file": redis.caPath])
    defer { byName.forEach { $0.stop() } }
    try sharedOneLogin(byName, sandbox, redis)
    let byAddress = try replicas(
      1, sandbox: sandbox, store: "rediss://127.0.0.1:\(redis.port)", flags: ["token-store-ca-file": redis.caPath])
    defer { byAddress.forEach { $0.stop() } }
    #expect(eventually { byAddress.allSatisfy(storeIsUp) })
  }

  @Test func tlsRefusesAServerItCannotVerifyAndKeepsServing() throws {
    let redis = try RedisServer(RedisServer.Options(tls: true))
    let other = temporaryDirectory("other-ca")
    try ThrowawayPKI.make(in: other, caName: "not the Redis CA")
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    // The system store does not know the throw-away CA; another CA does not either.
    for flags in [[:], ["token-store-ca-file": other + "/ca.pem"]] {
      let proxy = try replicas(1, sandbox: sandbox, store: "rediss://localhost:\(redis.port)", flags: flags)[0]
      defer { proxy.stop() }
      #expect(try proxy.get("/api/v1/echo").status == 200, "served while the store is refused")
      #expect(eventually { (try? proxy.admin("/readyz").text)?.contains("certificate not trusted") == true })
      #expect(
        eventually { (try? proxy.admin("/metrics").text)?.contains("authproxy_token_store_failures_total{reason=\"tls\"} 0") == false })
      #expect((try? redis.cli(["--scan"])) == "", "nothing was written through an unverified connection")
    }
  }

  @Test func tlsPresentsTheClientCertificateWhenTheServerWantsOne() throws {
    let redis = try RedisServer(RedisServer.Options(tls: true, requireClientCertificate: true))
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let without = try replicas(1, sandbox: sandbox, store: "rediss://localhost:\(redis.port)", flags: ["token-store-ca-file": redis.caPath])
    #expect(eventually { (try? without[0].admin("/readyz").text)?.contains("client certificate") == true })
    #expect(!storeIsUp(without[0]))
    without[0].stop()
    let with = try replicas(
      2, sandbox: sandbox, store: "rediss://localhost:\(redis.port)",
      flags: [
        "token-store-ca-file": redis.caPath, "token-store-client-cert": redis.certificatePath, "token-store-client-key": redis.keyPath,
      ])
    defer { with.forEach { $0.stop() } }
    #expect(eventually { with.allSatisfy(storeIsUp) })
  }

  @Test func anACLUserAuthenticatesWithItsNameAndPassword() throws {
    let redis = try RedisServer(RedisServer.Options(aclUser: ("authproxy", "acl-pass-1")))
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let proxies = try replicas(2, sandbox: sandbox, store: "redis://authproxy:acl-pass-1@127.0.0.1:\(redis.port)")
    defer { proxies.forEach { $0.stop() } }
    try sharedOneLogin(proxies, sandbox, redis)
    #expect(try redis.cli(["ACL", "WHOAMI"]) == "authproxy")
    #expect(proxies.allSatisfy { !$0.logs.all.contains { $0.contains("acl-pass-1") } })
  }

  @Test func thePasswordMayComeFromAFileWithTLSAndAnACLUser() throws {
    let redis = try RedisServer(RedisServer.Options(tls: true, aclUser: ("authproxy", "from-a-file")))
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let file = temporaryDirectory() + "/redis-password"
    try "from-a-file\n".write(toFile: file, atomically: true, encoding: .utf8)
    let proxies = try replicas(
      2, sandbox: sandbox, store: "rediss://authproxy:@localhost:\(redis.port)",
      flags: ["token-store-ca-file": redis.caPath], environment: ["AUTHPROXY_TOKEN_STORE_PASSWORD_FILE": file])
    defer { proxies.forEach { $0.stop() } }
    try sharedOneLogin(proxies, sandbox, redis)
  }

  @Test func badStoreSettingsNameTheFlagAndNeverEchoThePassword() throws {
    func problems(_ flags: [String: String], _ environment: [String: String] = [:]) -> String {
      let all = ["upstream": "https://api.example.com"].merging(flags) { $1 }
      guard case .failure(let errors) = ServeConfig.load(flags: all, environment: ["ENCRYPTION_KEY": key].merging(environment) { $1 })
      else { return "" }
      return errors.description
    }
    let bad = [
      "redis://:hunter2@", "rediss://:hunter2@host", "redis://:hunter2@h:1/x", "redis-sentinel://:hunter2@h:1",
      "redis://:hunter2@a:1,b:2", "redis-sentinel://:hunter2@h:x/m", "memcached://:hunter2@h:1",
    ]
    for value in bad {
      let text = problems(["token-store": value])
      #expect(text.contains("--token-store"), "\(value): \(text)")
      #expect(!text.contains("hunter2"), "\(value) echoed its password")
    }
    #expect(problems(["token-store": "redis://127.0.0.1:6379", "token-store-ca-file": "/etc/hostname"]).contains("--token-store-ca-file"))
    #expect(problems(["token-store": "rediss://127.0.0.1:6379", "token-store-client-cert": "/etc/hostname"]).contains("go together"))
    #expect(
      problems(["token-store": "redis://:inline@127.0.0.1:6379"], ["AUTHPROXY_TOKEN_STORE_PASSWORD_FILE": "/etc/hostname"])
        .contains("in one place only"))
    #expect(problems(["token-store": "redis://127.0.0.1:6379", "token-store-password-file": "/nonexistent"]).contains("cannot read"))
    #expect(problems(["token-store": "memory", "token-store-password-file": "/etc/hostname"]).contains("only means something"))
    #expect(problems(["token-store": "redis://127.0.0.1:6379", "token-store-timeout": "soon"]).contains("--token-store-timeout"))
    let notPEM = temporaryDirectory() + "/not-a-certificate.pem"
    try "not a certificate\n".write(toFile: notPEM, atomically: true, encoding: .utf8)
    #expect(problems(["token-store": "rediss://127.0.0.1:6379", "token-store-ca-file": notPEM]).contains("--token-store-ca-file"))
    #expect(
      problems(["token-store": "rediss://127.0.0.1:6379", "token-store-client-cert": notPEM, "token-store-client-key": notPEM])
        .contains("--token-store-client-cert"))
    // Names are not resolved at start-up any more (that blocked); the forms are accepted.
    for good in [
      "redis://redis.internal:6379/2", "rediss://user:pw@redis.example.com:6380", "redis-sentinel://10.0.0.1:26379,[::1]:26379/mymaster/3",
    ] {
      #expect(problems(["token-store": good]) == "", "\(good) was refused")
    }
  }
}

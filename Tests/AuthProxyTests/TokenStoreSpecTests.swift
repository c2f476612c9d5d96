import Testing

@testable import AuthProxy

/// `--token-store` forms (issue 20): each URL shape parses into the target the Redis client uses.
struct TokenStoreSpecTests {
  private func target(_ text: String) throws -> RedisTarget {
    guard case .redis(let target) = try TokenStoreSpec.parse(text).get() else { throw ConfigProblem("not redis") }
    return target
  }

  @Test func plainURLWithPasswordAndDatabase() throws {
    let parsed = try target("redis://:s3cret@redis.internal:6379/2")
    #expect(parsed.locator == .direct(HostPort(host: "redis.internal", port: 6379)))
    #expect(parsed.password?.reveal == "s3cret")
    #expect(parsed.username == nil)
    #expect(parsed.database == 2)
    #expect(!parsed.tls)
  }

  @Test func tlsURLWithAnACLUserAndAPercentEncodedPassword() throws {
    let parsed = try target("rediss://authproxy:p%40ss%3Aword@[::1]:6380")
    #expect(parsed.tls)
    #expect(parsed.username == "authproxy")
    #expect(parsed.password?.reveal == "p@ss:word")
    #expect(parsed.locator == .direct(HostPort(host: "::1", port: 6380)))
  }

  @Test func aPasswordAloneIsTheDefaultUsersPassword() throws {
    let parsed = try target("redis://justapassword@127.0.0.1:6379")
    #expect(parsed.username == nil)
    #expect(parsed.password?.reveal == "justapassword")
    #expect(try target("redis://user:@127.0.0.1:6379").password == nil, "a user with no password: the password file may give it")
  }

  @Test func sentinelURLNamesTheSentinelsAndTheMaster() throws {
    let parsed = try target("redis-sentinel://10.0.0.1:26379,10.0.0.2:26379,[fd00::3]:26379/mymaster/1")
    #expect(
      parsed.locator
        == .sentinel(
          [HostPort(host: "10.0.0.1", port: 26379), HostPort(host: "10.0.0.2", port: 26379), HostPort(host: "fd00::3", port: 26379)],
          masterName: "mymaster"))
    #expect(parsed.database == 1)
    #expect(!parsed.tls)
    #expect(parsed.summary == "redis-sentinel://10.0.0.1:26379,10.0.0.2:26379,[fd00::3]:26379/mymaster")
    let overTLS = try target("rediss-sentinel://user:pw@s1.internal:26379/cache")
    #expect(overTLS.tls)
    #expect(overTLS.username == "user")
    #expect(overTLS.summary == "rediss-sentinel://s1.internal:26379/cache")
  }

  @Test func theSummaryNeverHoldsCredentials() throws {
    let parsed = try target("rediss://someone:hunter2@redis.example.com:6380/3")
    #expect(parsed.summary == "rediss://redis.example.com:6380")
    #expect(!"\(parsed)".contains("hunter2"))
  }

  @Test func malformedFormsAreRefused() {
    for text in [
      "redis://", "redis://host", "redis://host:0", "redis://a:1,b:2", "redis://h:1/db", "redis://h:1/1/2",
      "redis-sentinel://h:1", "redis-sentinel://h:1/", "rediss//h:1", "http://h:1",
    ] {
      guard case .failure = TokenStoreSpec.parse(text) else {
        Issue.record("\(text) was accepted")
        continue
      }
    }
  }
}

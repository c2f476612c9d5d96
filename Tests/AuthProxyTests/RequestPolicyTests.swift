import Testing

@testable import AuthProxy

// MARK: - Builders

private func policy(maxBody: Int? = nil, configure: (inout ServeConfig) -> Void = { _ in }) throws -> RequestPolicy {
  var config = ServeConfig(upstream: try UpstreamURL.parse("https://api.example.com").get())
  if let maxBody { config.maxBody = maxBody }
  configure(&config)
  return RequestPolicy(config: config)
}

private func verdict(_ method: String = "GET", _ target: String, bodyLength: Int = 0) throws -> ProxyError? {
  try policy().check(method: method, target: target, bodyLength: bodyLength)
}

// MARK: - Specification

@Suite struct RequestPolicyTests {

  // MARK: The auth paths are the proxy's own

  @Test(arguments: [
    "/auth/login", "/auth/login/", "//auth//login", "/auth/./login", "/AUTH/LOGIN", "/Auth/Login", "/auth%2Flogin",
    "/auth%2flogin", "/%61uth/login", "/x/../auth/login", "/auth/login;jsessionid=1", "/auth/login?x=1",
    "/auth/login/?x=1", "/auth/refresh", "/auth/logout", "/auth/logout/", "/AUTH/LOGOUT", "/auth/logout;x",
    "/x/y/../../auth/logout",
  ])
  func refusesTheAuthPaths(target: String) throws {
    let error = try #require(try verdict("POST", target))
    #expect(error.status == 403)
    #expect(error.code == "forbidden")
  }

  @Test(arguments: ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"])
  func refusesTheAuthPathsForEveryMethod(method: String) throws {
    #expect(try verdict(method, "/auth/logout")?.status == 403)
  }

  @Test(arguments: [
    "/", "/api/v1/orders", "/api/v1/auth/login-history", "/api/v1/auth/login", "/auth/loginx", "/auth/login-history",
    "/auth", "/auth/", "/authx/login", "/api/v1/products?page=2&limit=20", "/api/v1/search?q=/auth/login",
  ])
  func allowsBusinessPaths(target: String) throws {
    #expect(try verdict("GET", target) == nil)
  }

  @Test func refusesConfiguredAuthPathsInsteadOfTheDefaults() throws {
    let custom = try policy { config in
      config.loginPath = "/v2/session"
    }
    #expect(custom.check(method: "POST", target: "/v2/Session/", bodyLength: 0)?.status == 403)
    #expect(custom.check(method: "POST", target: "/auth/login", bodyLength: 0) == nil)
  }

  // MARK: Request shape

  @Test(arguments: ["http://evil.example.com/", "https://api.example.com/api/v1/orders", "*", "api.example.com:443", ""])
  func refusesNonOriginFormTargets(target: String) throws {
    let error = try #require(try verdict("GET", target))
    #expect(error.status == 400)
    #expect(error.code == "bad_request")
  }

  @Test(arguments: ["CONNECT", "TRACE"])
  func refusesConnectAndTrace(method: String) throws {
    let error = try #require(try verdict(method, "/api/v1/orders"))
    #expect(error.status == 400)
    #expect(error.message.contains(method))
  }

  @Test func refusesConnectInAuthorityForm() throws {
    #expect(try verdict("CONNECT", "api.example.com:443")?.status == 400)
  }

  // MARK: Body size

  @Test func refusesABodyOverTheLimit() throws {
    let error = try #require(try policy(maxBody: 1024).check(method: "POST", target: "/api/v1/orders", bodyLength: 1025))
    #expect(error.status == 413)
    #expect(error.code == "body_too_large")
  }

  @Test func acceptsABodyExactlyAtTheLimit() throws {
    #expect(try policy(maxBody: 1024).check(method: "POST", target: "/api/v1/orders", bodyLength: 1024) == nil)
  }

  @Test func defaultLimitIsTenMebibytes() throws {
    let defaults = try policy()
    #expect(defaults.maxBody == 10 * 1024 * 1024)
    #expect(defaults.check(method: "PUT", target: "/api/v1/files", bodyLength: 10 * 1024 * 1024) == nil)
    #expect(defaults.check(method: "PUT", target: "/api/v1/files", bodyLength: 10 * 1024 * 1024 + 1)?.status == 413)
  }
}

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

  // MARK: Apps reach only the business API (--api-prefix)

  @Test(arguments: [
    "/api/v1/orders", "/api/v1/auth/login-history", "/api/v1/auth/login", "/api/v1/products?page=2&limit=20",
    "/api/v1/search?q=/auth/login", "/api/", "/api", "/API/v1/products", "/api/v1/x/../products", "/api/v1/%70roducts",
  ])
  func allowsBusinessPaths(target: String) throws {
    #expect(try verdict("GET", target) == nil)
  }

  @Test(arguments: [
    "/", "/auth", "/auth/", "/authx/login", "/apix", "/ap", "/health", "/v1/products", "/api/../auth/login",
    "/api/..%2f..%2fauth%2flogout", "/api%2f..%2fauth/logout", "/api/v1/../../auth/refresh",
    // Variants of the auth paths that some routers trim or route to the same handler.
    "/auth/logout%20", "/auth/logout%00", "/auth/logout.json", "/auth/logout~", "/auth/logout%3f", "/auth/login%00x",
  ])
  func refusesPathsOutsideTheAPIPrefix(target: String) throws {
    let error = try #require(try verdict("POST", target))
    #expect(error.status == 403)
    #expect(error.code == "forbidden")
    #expect(error.message.contains("--api-prefix") || error.message.contains("auth paths"))
  }

  @Test func theRefusalNamesTheFlagAndThePrefix() throws {
    let error = try #require(try verdict("GET", "/v2/products"))
    #expect(error.message == "apps reach only the API's paths under /api/ through the proxy (--api-prefix)")
  }

  @Test func aConfiguredPrefixMovesTheBoundary() throws {
    let v2 = try policy { $0.apiPrefix = "/v2/" }
    #expect(v2.check(method: "GET", target: "/v2/products", bodyLength: 0) == nil)
    #expect(v2.check(method: "GET", target: "/api/v1/products", bodyLength: 0)?.status == 403)
  }

  @Test(arguments: [
    "/auth/logout%20", "/auth/logout%00", "/auth/logout.json", "/auth/logout~", "/auth/logout%3f", "/auth/login%00x",
    "/auth/logout/", "/auth/logout/all", "/auth/refresh.xml", "/auth/login%23", "/AUTH/LOGOUT%2E",
  ])
  func theAuthPathsAndTheirVariantsStayRefusedUnderAnyPrefix(target: String) throws {
    let everything = try policy { $0.apiPrefix = "/" }
    let error = try #require(everything.check(method: "POST", target: target, bodyLength: 0))
    #expect(error.message == "the API's auth paths are the proxy's own; apps cannot call them")
    let overlapping = try policy { $0.apiPrefix = "/auth/" }
    #expect(overlapping.check(method: "POST", target: target, bodyLength: 0)?.status == 403)
  }

  @Test(arguments: ["/", "/auth", "/auth/loginx", "/auth/login-history", "/auth/logout_all", "/authx/login", "/api/v1/orders"])
  func withPrefixSlashOtherPathsPass(target: String) throws {
    let everything = try policy { $0.apiPrefix = "/" }
    #expect(everything.check(method: "GET", target: target, bodyLength: 0) == nil)
  }

  @Test func refusesConfiguredAuthPathsInsteadOfTheDefaults() throws {
    let custom = try policy { config in
      config.loginPath = "/v2/session"
      config.apiPrefix = "/"
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

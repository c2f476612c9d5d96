import AuthProxy
import Foundation
import SandboxAPI
import TestSupport
import Testing

// The sandbox answers as the API's docs do: every documented answer it can give is provoked
// here and compared with the fixture. Token answers must have the same shape (keys and JSON
// types: a string `client_id` where the docs have a number fails); error answers the same
// status and the same body, message included.

/// Provokes, in a fresh sandbox, the answer the docs name `name`.
private func provoke(_ name: String, in sandbox: SandboxFixture) throws -> CurlReply {
  let credentials = #"{"username":"demo","password":"demo-password"}"#
  let wrong = #"{"username":"demo","password":"wrong"}"#
  switch name {
  case "login-200-envelope": return try sandbox.curl("POST", "/auth/login", json: credentials)
  case "login-200-bare":
    sandbox.api.setEnvelope(false)
    return try sandbox.curl("POST", "/auth/login", json: credentials)
  case "login-400-syntax": return try sandbox.curl("POST", "/auth/login", json: "username=demo")
  case "login-400-validation": return try sandbox.curl("POST", "/auth/login", json: #"{"username":"demo"}"#)
  case "login-401-invalid-credentials": return try sandbox.curl("POST", "/auth/login", json: wrong)
  case "login-403-ip-not-authorized":
    sandbox.api.failLogins(.ipNotWhitelisted)
    return try sandbox.curl("POST", "/auth/login", json: credentials)
  case "login-400-flat":
    sandbox.api.setFlatErrors(true)
    return try sandbox.curl("POST", "/auth/login", json: #"{"username":"demo"}"#)
  case "login-401-flat":
    sandbox.api.setFlatErrors(true)
    return try sandbox.curl("POST", "/auth/login", json: wrong)
  case "login-429-flat", "login-429-flat-retry-after":
    sandbox.api.failLogins(.rateLimited(retryAfterSeconds: 30))
    return try sandbox.curl("POST", "/auth/login", json: credentials)
  case "refresh-200-envelope": return try sandbox.refresh(try sandbox.login(SandboxAPI.demoUsers[0]).refresh)
  case "refresh-400-syntax": return try sandbox.curl("POST", "/auth/refresh", json: "refresh_token=x")
  case "refresh-400-validation": return try sandbox.curl("POST", "/auth/refresh", json: "{}")
  case "refresh-401-invalid-refresh-token": return try sandbox.refresh("rt_made-up")
  case "refresh-403-ip-not-authorized":
    let pair = try sandbox.login(SandboxAPI.demoUsers[0])
    sandbox.api.failLogins(.ipNotWhitelisted)
    return try sandbox.refresh(pair.refresh)
  case "logout-200": return try sandbox.curl("POST", "/auth/logout", token: try sandbox.login(SandboxAPI.demoUsers[0]).access)
  case "logout-401-authentication-required": return try sandbox.curl("POST", "/auth/logout")
  default: throw CurlFailure(description: "no way to provoke \(name) in the sandbox")
  }
}

@Suite struct SandboxContractTests {

  @Test(arguments: DocumentedAnswer.all)
  func theSandboxGivesEachDocumentedAnswer(answer: DocumentedAnswer) throws {
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    let reply = try provoke(answer.name, in: sandbox)
    #expect(reply.status == answer.status)
    let shape = try #require(JSONShape.of(Array(reply.body)), "not JSON: \(reply.text)")
    #expect(shape == answer.shape, "sandbox \(shape) against the docs' \(answer.shape.map(\.description) ?? "?")")
    if answer.status >= 400 {
      // Errors carry no per-call values: the whole body is the documented one.
      let documented = try JSONSerialization.jsonObject(with: Data(answer.body)) as? NSDictionary
      let given = try JSONSerialization.jsonObject(with: reply.body) as? NSDictionary
      #expect(given == documented)
    }
    for (name, _) in answer.headers { #expect(reply.header(name) != nil, "the docs' answer has \(name)") }
  }

  @Test func aStringClientIDIsNotTheDocumentedShape() throws {
    // The check above would catch the drift that once made every real login fail.
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    sandbox.api.setClientIDForm(.string)
    let reply = try sandbox.curl("POST", "/auth/login", json: #"{"username":"demo","password":"demo-password"}"#)
    #expect(reply.status == 200)
    #expect(JSONShape.of(Array(reply.body)) != DocumentedAnswer.named("login-200-envelope")?.shape)
  }
}

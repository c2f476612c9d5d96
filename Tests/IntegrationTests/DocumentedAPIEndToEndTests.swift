import AuthProxy
import Foundation
import TestSupport
import Testing

// `authproxy serve`, as a user runs it, against a fake of the API written from the docs'
// answers (Tests/Fixtures/api-contract/fake_api.py, Python's own HTTP and TLS), not against
// the sandbox: the sandbox agreeing with our code proves nothing.

/// The Python fake on a free port, answering logins with the documented answer `login`.
private final class DocumentedFakeAPI {
  let directory: String
  let process = Process()
  let port: Int
  let recordPath: String
  var caPath: String { directory + "/pki/ca.pem" }

  init(login: String) throws {
    directory = temporaryDirectory("fake-api")
    try FileManager.default.createDirectory(atPath: directory + "/pki", withIntermediateDirectories: true)
    try ThrowawayPKI.make(in: directory + "/pki", caName: "fake API CA")
    let portFile = directory + "/port"
    recordPath = directory + "/requests.jsonl"
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
      "python3", DocumentedAnswer.directory + "/fake_api.py", "--cert", directory + "/pki/server.pem", "--key",
      directory + "/pki/server-key.pem", "--port-file", portFile, "--login", login, "--record", recordPath,
    ]
    process.environment = ["PATH": "/usr/bin:/bin:/usr/local/bin"]
    try process.run()
    guard eventually({ FileManager.default.fileExists(atPath: portFile) }),
      let text = try? String(contentsOfFile: portFile, encoding: .utf8), let port = Int(text)
    else {
      kill(process.processIdentifier, SIGKILL)
      throw HTTPClientError(description: "the fake API did not start")
    }
    self.port = port
  }

  /// The requests that reached the fake, in order.
  var requests: [[String: Any]] {
    let text = (try? String(contentsOfFile: recordPath, encoding: .utf8)) ?? ""
    return text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
  }

  func stop() {
    // SIGKILL: a child of Foundation's Process may start with SIGTERM blocked.
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
  }
}

/// `authproxy serve` in front of `api`; returns the proxy and its app and admin ports.
private func serve(inFrontOf api: DocumentedFakeAPI) throws -> (proxy: ProxyProcess, port: Int, admin: Int) {
  let port = freePort()
  let admin = freePort()
  let proxy = try ProxyProcess(
    [
      "serve", "--upstream", "https://localhost:\(api.port)", "--ca-file", api.caPath, "--listen", "127.0.0.1:\(port)",
      "--admin-listen", "127.0.0.1:\(admin)", "--workers", "1", "--access-log", api.directory + "/access.log",
    ], environment: ["API_USERNAME": "your_api_username", "API_PASSWORD": "your_api_password"])
  return (proxy, port, admin)
}

@Suite struct DocumentedAPIEndToEndTests {

  @Test(arguments: ["login-200-envelope", "login-200-bare"])
  func aRequestThroughTheProxyIsAnsweredWithADocumentedLogin(login: String) throws {
    let api = try DocumentedFakeAPI(login: login)
    defer { api.stop() }
    let (proxy, port, admin) = try serve(inFrontOf: api)
    defer { _ = proxy.stop() }
    #expect(eventually { (try? request(port: admin, target: "/readyz").status) == 200 })
    let reply = try request(port: port, target: "/api/v1/categories")
    #expect(reply.status == 200)
    let categories = try #require(JSONSerialization.jsonObject(with: Data(reply.body)) as? [[String: Any]])
    #expect(categories.count == 3)
    #expect(reply.header("X-Total-Count") == "3")
    // The documented token went upstream as the bearer; the login went out once.
    let seen = api.requests
    #expect(seen.filter { $0["path"] as? String == "/auth/login" }.count == 1)
    let call = try #require(seen.last { $0["path"] as? String == "/api/v1/categories" })
    #expect(call["authorization"] as? String == "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...")
  }

  @Test(arguments: [
    ("login-401-invalid-credentials", "invalid credentials: the API refused the username or password"),
    ("login-401-flat", "invalid credentials: the API refused the username or password"),
    ("login-403-ip-not-authorized", "IP address not authorized by the API: the egress IP is not on the account's whitelist"),
    ("login-429-flat-retry-after", "rate limited by the API: too many login attempts"),
    ("login-400-validation", "the API refused the login request as invalid (HTTP 400): are the username and password set?"),
  ])
  func aDocumentedRefusalIsTheReasonInReadyzAndThe503(login: String, reason: String) throws {
    let api = try DocumentedFakeAPI(login: login)
    defer { api.stop() }
    let (proxy, port, admin) = try serve(inFrontOf: api)
    defer { _ = proxy.stop() }
    var readiness: [String: Any]?
    #expect(
      eventually {
        guard let reply = try? request(port: admin, target: "/readyz"), reply.status == 503 else { return false }
        readiness = reply.json
        return readiness?["reason"] as? String == reason
      }, "readyz: \(readiness ?? [:])")
    let reply = try request(port: port, target: "/api/v1/categories")
    #expect(reply.status == 503)
    #expect(reply.errorCode == "no_token")
    #expect(reply.errorMessage == "no valid API token: \(reason)")
    #expect(!api.requests.contains { $0["path"] as? String == "/api/v1/categories" })
  }
}

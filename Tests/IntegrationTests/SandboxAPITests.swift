import AuthProxy
import Foundation
import Testing
import TestSupport

@testable import SandboxAPI

// The sandbox API over real TLS, with /usr/bin/curl as the client (Support/SandboxFixture.swift).

private let demo = SandboxAPI.demoUsers[0]
private let demoRotated = SandboxAPI.demoUsers[1]
private let other = SandboxAPI.demoUsers[2]

@Suite struct SandboxAPITests {
  @Test func loginAnswersEnvelopedTokens() throws {
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    let before = Date()
    let reply = try sandbox.curl("POST", "/auth/login", json: #"{"username":"demo","password":"demo-password"}"#)
    #expect(reply.status == 200)
    #expect(reply.header("Content-Type") == "application/json")
    #expect(reply.object?["success"] as? Bool == true)
    let data = try #require(reply.data)
    let access = try #require(data["access_token"] as? String)
    let refresh = try #require(data["refresh_token"] as? String)
    #expect(access.hasPrefix("at_") && access.count >= 35)
    #expect(refresh.hasPrefix("rt_") && refresh.count >= 35)
    let urlSafe = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    #expect(access.dropFirst(3).unicodeScalars.allSatisfy(urlSafe.contains))
    #expect(data["client_id"] as? Int == 123456)
    let accessExpiry = try #require(rfc3339(data["access_expires_at"]))
    let refreshExpiry = try #require(rfc3339(data["refresh_expires_at"]))
    #expect((data["access_expires_at"] as? String)?.hasSuffix("Z") == true)
    #expect(abs(accessExpiry.timeIntervalSince(before) - 3600) < 5)
    #expect(abs(refreshExpiry.timeIntervalSince(before) - 7 * 86400) < 5)
    #expect(sandbox.api.issuedSecrets == [access, refresh])
    #expect(sandbox.api.counters == SandboxCounters(logins: 1))
    // A second login gets a different pair.
    let second = try sandbox.login(demo)
    #expect(second.access != access && second.refresh != refresh)
  }

  @Test func loginWithoutEnvelopeAndFlatErrors() throws {
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    sandbox.api.setEnvelope(false)
    let reply = try sandbox.curl("POST", "/auth/login", json: #"{"username":"other","password":"other-password"}"#)
    #expect(reply.status == 200)
    #expect(reply.object?["success"] == nil && reply.object?["data"] == nil)
    #expect((reply.object?["access_token"] as? String)?.hasPrefix("at_") == true)
    #expect(reply.object?["client_id"] as? Int == 654321)
    sandbox.api.setFlatErrors(true)
    let refused = try sandbox.curl("POST", "/auth/login", json: #"{"username":"other","password":"nope"}"#)
    #expect(refused.status == 401)
    #expect(refused.object?["error"] as? String == "unauthorized")
    #expect(refused.object?["message"] is String)
    let unauthorized = try sandbox.echo(nil)
    #expect(unauthorized.status == 401 && unauthorized.object?["error"] as? String == "unauthorized")
  }

  @Test func badCredentialsAndBadRequests() throws {
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    let wrongPassword = try sandbox.curl("POST", "/auth/login", json: #"{"username":"demo","password":"other-password"}"#)
    #expect(wrongPassword.status == 401)
    #expect(wrongPassword.errorCode == "UNAUTHORIZED")
    #expect((wrongPassword.object?["error"] as? [String: Any])?["name"] as? String == "UnauthorizedError")
    #expect((wrongPassword.object?["error"] as? [String: Any])?["message"] as? String == "Invalid credentials")
    let unknownUser = try sandbox.curl("POST", "/auth/login", json: #"{"username":"nobody","password":"demo-password"}"#)
    #expect(unknownUser.status == 401 && unknownUser.errorCode == "UNAUTHORIZED")
    let notJSON = try sandbox.curl("POST", "/auth/login", json: "username=demo")
    #expect(notJSON.status == 400 && notJSON.errorCode == "SYNTAX_ERROR")
    let missing = try sandbox.curl("POST", "/auth/login", json: #"{"username":"demo"}"#)
    #expect(missing.status == 400 && missing.errorCode == "VALIDATION_FAILURE")
    let wrongMethod = try sandbox.curl("GET", "/auth/login")
    #expect(wrongMethod.status == 405)
    let badRefresh = try sandbox.curl("POST", "/auth/refresh", json: "{}")
    #expect(badRefresh.status == 400)
    #expect(sandbox.api.counters == SandboxCounters(failedLogins: 4, failedRefreshes: 1))
    #expect(sandbox.api.issuedSecrets.isEmpty)
  }

  @Test func refreshRotatesAndKeepsTheOldAccessToken() throws {
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    let first = try sandbox.login(demo)
    let rotated = try sandbox.refresh(first.refresh)
    #expect(rotated.status == 200)
    let newAccess = try #require(rotated.data?["access_token"] as? String)
    let newRefresh = try #require(rotated.data?["refresh_token"] as? String)
    #expect(newAccess != first.access && newRefresh != first.refresh)
    #expect(rotated.data?["client_id"] as? Int == 123456)
    // The old refresh token is revoked; the old access token lives until it expires.
    let reused = try sandbox.refresh(first.refresh)
    #expect(reused.status == 401 && reused.errorCode == "UNAUTHORIZED")
    #expect(try sandbox.echo(first.access).status == 200)
    #expect(try sandbox.echo(newAccess).status == 200)
    #expect(try sandbox.refresh(newRefresh).status == 200)
    #expect(try sandbox.refresh("rt_made-up").errorCode == "UNAUTHORIZED")
    let counters = sandbox.api.counters
    #expect(counters.refreshes == 2 && counters.failedRefreshes == 2 && counters.logins == 1)
    #expect(sandbox.api.issuedSecrets.count == 6)
  }

  @Test func logoutRevokesEveryTokenOfTheClientOnly() throws {
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    let first = try sandbox.login(demo)
    let second = try sandbox.login(demoRotated)  // same client, other password
    let stranger = try sandbox.login(other)
    #expect(try sandbox.curl("POST", "/auth/logout").status == 401)
    let logout = try sandbox.curl("POST", "/auth/logout", token: first.access)
    #expect(logout.status == 200)
    for token in [first.access, second.access] {
      let refused = try sandbox.echo(token)
      #expect(refused.status == 401 && refused.errorCode == "UNAUTHORIZED")
    }
    #expect(try sandbox.refresh(first.refresh).status == 401)
    #expect(try sandbox.refresh(second.refresh).status == 401)
    #expect(try sandbox.curl("POST", "/auth/logout", token: second.access).status == 401)
    // The other client is untouched.
    #expect(try sandbox.echo(stranger.access).status == 200)
    #expect(try sandbox.refresh(stranger.refresh).status == 200)
    #expect(sandbox.api.counters.logouts == 1)
  }

  @Test func echoShowsTheRequestAsReceived() throws {
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    let pair = try sandbox.login(demo)
    let reply = try sandbox.curl(
      "PUT", "/api/v1/echo/things?a=1&b=%2F", json: #"{"x":"y"}"#, token: pair.access, extra: ["-H", "X-Custom: one two"])
    #expect(reply.status == 200)
    let echo = try #require(reply.object)
    #expect(echo["method"] as? String == "PUT")
    #expect(echo["target"] as? String == "/api/v1/echo/things?a=1&b=%2F")
    #expect(echo["client_id"] as? Int == 123456)
    #expect(echo["body_length"] as? Int == 9)
    #expect(echo["body_base64"] as? String == Data(#"{"x":"y"}"#.utf8).base64EncodedString())
    let headers = try #require(echo["headers"] as? [[String]])
    #expect(headers.contains(["X-Custom", "one two"]))
    #expect(headers.contains(["Authorization", "Bearer \(pair.access)"]))
    let recorded = try #require(sandbox.api.lastAPIRequest)
    #expect(recorded.method == "PUT" && recorded.target == "/api/v1/echo/things?a=1&b=%2F")
    #expect(recorded.header("x-custom") == "one two")
    #expect(recorded.body == Array(#"{"x":"y"}"#.utf8))

    let missing = try sandbox.echo(nil)
    #expect(missing.status == 401 && missing.errorCode == "UNAUTHORIZED")
    #expect(missing.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
    #expect(try sandbox.echo("at_not-a-token").status == 401)
    #expect(try sandbox.curl("GET", "/api/v1/nothing-here", token: pair.access).status == 404)
    #expect(try sandbox.curl("GET", "/elsewhere").status == 404)
    #expect(sandbox.api.counters == SandboxCounters(logins: 1, apiRequests: 2, unauthorizedAPIRequests: 2))
  }

  @Test func revokeAllTokensRefusesEveryToken() throws {
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    let mine = try sandbox.login(demo)
    let theirs = try sandbox.login(other)
    sandbox.api.revokeAllTokens()
    #expect(try sandbox.echo(mine.access).status == 401)
    #expect(try sandbox.echo(theirs.access).status == 401)
    #expect(try sandbox.refresh(theirs.refresh).status == 401)
    #expect(try sandbox.echo(try sandbox.login(demo).access).status == 200)
  }

  @Test func shortLifetimesExpire() throws {
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    let longLived = try sandbox.login(demo)
    sandbox.api.setLifetimes(access: 2, refresh: 2)
    let started = Date()
    let reply = try sandbox.curl("POST", "/auth/login", json: #"{"username":"demo","password":"demo-password"}"#)
    let access = try #require(reply.data?["access_token"] as? String)
    let refresh = try #require(reply.data?["refresh_token"] as? String)
    let expiry = try #require(rfc3339(reply.data?["access_expires_at"]))
    #expect(expiry.timeIntervalSince(started) <= 2.5)
    #expect(try sandbox.echo(access).status == 200)
    let expired = try eventually(timeout: 10) { try sandbox.echo(access).status == 401 }
    #expect(expired)
    #expect(Date().timeIntervalSince(started) >= 1.9)
    // Both lifetimes were 2 s: the refresh token expired with the access token.
    let refused = try sandbox.refresh(refresh)
    #expect(refused.status == 401 && refused.errorCode == "UNAUTHORIZED")
    // Tokens issued before the change keep their lifetime.
    #expect(try sandbox.echo(longLived.access).status == 200)
  }

  @Test func bytesStreamsTheExactPattern() throws {
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    let token = try sandbox.login(demo).access
    let size = 5 * 1024 * 1024 + 17
    let reply = try sandbox.curl("GET", "/api/v1/bytes?size=\(size)", token: token)
    #expect(reply.exitCode == 0)
    #expect(reply.status == 200)
    #expect(reply.header("Content-Length") == String(size))
    #expect(reply.header("Transfer-Encoding") == nil)
    #expect(reply.body.count == size)
    let wrong = reply.body.withUnsafeBytes { bytes in
      (0..<bytes.count).first { bytes[$0] != UInt8($0 % 251) }
    }
    #expect(wrong == nil)

    // A slow reader gets the same bytes, paced by its reading.
    let paced = try sandbox.curl("GET", "/api/v1/bytes?size=3000000", token: token, extra: ["--limit-rate", "4M"])
    #expect(paced.body.count == 3_000_000 && paced.body.last == UInt8(2_999_999 % 251))

    let empty = try sandbox.curl("GET", "/api/v1/bytes?size=0", token: token)
    #expect(empty.status == 200 && empty.body.isEmpty && empty.header("Content-Length") == "0")
    #expect(try sandbox.curl("GET", "/api/v1/bytes?size=-1", token: token).status == 400)
    #expect(try sandbox.curl("GET", "/api/v1/bytes?size=\(3 << 30)", token: token).status == 400)
  }

  @Test func bytesSurvivesAClientThatGoesAway() throws {
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    let token = try sandbox.login(demo).access
    // curl stops after a second of a 1 GiB body, read slowly.
    let cut = try sandbox.curl(
      "GET", "/api/v1/bytes?size=\(1 << 30)", token: token, extra: ["--limit-rate", "1M", "--max-time", "1"])
    #expect(cut.exitCode == 28)
    #expect(cut.body.count < 1 << 30)
    #expect(try sandbox.echo(token).status == 200)
    let whole = try sandbox.curl("GET", "/api/v1/bytes?size=1000000", token: token)
    #expect(whole.body.count == 1_000_000)
  }

  @Test func slowAnswersLaterWithoutBlockingOthers() throws {
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    let token = try sandbox.login(demo).access
    let started = Date()
    let slow = try sandbox.curl("GET", "/api/v1/slow?ms=300", token: token)
    #expect(Date().timeIntervalSince(started) >= 0.3)
    #expect(slow.status == 200 && slow.object?["slept_ms"] as? Int == 300)

    // A long sleep on one connection does not hold up another.
    let background = Process()
    background.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    background.arguments = [
      "-s", "-o", "/dev/null", "--cacert", sandbox.api.caPath, "-H", "Authorization: Bearer \(token)",
      sandbox.api.baseURL + "/api/v1/slow?ms=3000",
    ]
    try background.run()
    defer { background.waitUntilExit() }
    #expect(eventually(timeout: 5) { sandbox.api.lastAPIRequest?.target == "/api/v1/slow?ms=3000" })
    let quickStart = Date()
    #expect(try sandbox.echo(token).status == 200)
    #expect(Date().timeIntervalSince(quickStart) < 2)
    #expect(background.isRunning)
    #expect(try sandbox.curl("GET", "/api/v1/slow?ms=x", token: token).status == 400)
  }

  @Test func failLoginsModes() throws {
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    let credentials = #"{"username":"demo","password":"demo-password"}"#
    sandbox.api.failLogins(.invalidCredentials)
    let invalid = try sandbox.curl("POST", "/auth/login", json: credentials)
    #expect(invalid.status == 401 && invalid.errorCode == "UNAUTHORIZED")
    sandbox.api.failLogins(.ipNotWhitelisted)
    let forbidden = try sandbox.curl("POST", "/auth/login", json: credentials)
    #expect(forbidden.status == 403 && forbidden.errorCode == "FORBIDDEN")
    #expect((forbidden.object?["error"] as? [String: Any])?["message"] as? String == "IP address not authorized")
    sandbox.api.failLogins(.rateLimited(retryAfterSeconds: 7))
    let limited = try sandbox.curl("POST", "/auth/login", json: credentials)
    // The docs show a 429 only flat, with this message.
    #expect(limited.status == 429 && limited.object?["error"] as? String == "Too Many Requests")
    #expect(limited.object?["message"] as? String == "Too many login attempts. Please try again later.")
    #expect(limited.header("Retry-After") == "7")
    sandbox.api.failLogins(.serverError)
    #expect(try sandbox.curl("POST", "/auth/login", json: credentials).status == 500)
    #expect(sandbox.api.issuedSecrets.isEmpty)
    sandbox.api.failLogins(nil)
    #expect(try sandbox.curl("POST", "/auth/login", json: credentials).status == 200)
    #expect(sandbox.api.counters == SandboxCounters(logins: 1, failedLogins: 4))
  }

  @Test func productsOrdersAndStatus() throws {
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    let token = try sandbox.login(demo).access
    let first = try sandbox.curl("GET", "/api/v1/products?page=1&limit=20", token: token)
    #expect(first.status == 200 && first.array?.count == 20)
    #expect(first.header("X-Total-Count") == "45" && first.header("X-Total-Pages") == "3")
    #expect(first.header("X-Page") == "1" && first.header("X-Per-Page") == "20" && first.header("X-Has-More") == "true")
    let last = try sandbox.curl("GET", "/api/v1/products?page=3&limit=20", token: token)
    #expect(last.array?.count == 5 && last.header("X-Has-More") == "false")
    #expect(last.array?.first?["id"] as? Int == 41)

    let order = try sandbox.curl("POST", "/api/v1/orders", json: #"{"product_id":3,"quantity":2}"#, token: token)
    #expect(order.status == 201 && order.object?["id"] as? Int == 1 && order.object?["product_id"] as? Int == 3)
    let again = try sandbox.curl("POST", "/api/v1/orders", json: #"{"product_id":3,"quantity":2}"#, token: token)
    #expect(again.object?["id"] as? Int == 2)
    #expect(sandbox.api.counters.orders == 2)

    let unavailable = try sandbox.curl("GET", "/api/v1/status/503", token: token)
    #expect(unavailable.status == 503 && unavailable.header("Retry-After") == "1")
    #expect(unavailable.object?["status"] as? Int == 503)
    let teapot = try sandbox.curl("DELETE", "/api/v1/status/418", token: token)
    #expect(teapot.status == 418 && teapot.header("Retry-After") == nil)
  }

  @Test func clientsMustTrustTheSandboxCA() throws {
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    let untrusted = try runCurl([sandbox.api.baseURL + "/api/v1/echo"])
    #expect(untrusted.exitCode == 60)  // CURLE_PEER_FAILED_VERIFICATION
    #expect(untrusted.status == 0)
    let otherCA = sandbox.directory + "/other"
    try FileManager.default.createDirectory(atPath: otherCA, withIntermediateDirectories: true)
    try ThrowawayPKI.make(in: otherCA, caName: "another CA")
    #expect(try runCurl(["--cacert", otherCA + "/ca.pem", sandbox.api.baseURL + "/api/v1/echo"]).exitCode == 60)
    // By IP address too: the certificate names 127.0.0.1.
    let byIP = try runCurl(["--cacert", sandbox.api.caPath, "https://127.0.0.1:\(sandbox.api.port)/api/v1/echo"])
    #expect(byIP.exitCode == 0 && byIP.status == 401)
  }

  @Test func restartReusesThePKIAndStopIsIdempotent() throws {
    let sandbox = try SandboxFixture()
    defer { sandbox.close() }
    let ca = try String(contentsOfFile: sandbox.api.caPath, encoding: .utf8)
    let port = sandbox.api.port
    sandbox.api.stop()
    sandbox.api.stop()
    #expect(try runCurl(["--cacert", sandbox.api.caPath, sandbox.api.baseURL + "/"]).exitCode == 7)  // connection refused
    let again = try SandboxAPI.start(port: port, pkiDirectory: sandbox.directory + "/pki")
    defer { again.stop() }
    #expect(try String(contentsOfFile: again.caPath, encoding: .utf8) == ca)
    #expect(again.port == port && again.baseURL == "https://localhost:\(port)")
    #expect(try runCurl(["--cacert", again.caPath, again.baseURL + "/api/v1/echo"]).status == 401)
  }
}

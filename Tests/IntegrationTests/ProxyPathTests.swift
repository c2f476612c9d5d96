import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// The proxy path end to end (issue 2): real sockets, real TLS, the sandbox API upstream.
@Suite(.serialized) struct ProxyPathTests {
  @Test func forwardsWithOurBearerTokenAndPassesTheRequestThroughByteForByte() throws {
    let proxy = try ProxyHarness()
    defer { proxy.stop() }
    let body = Array("{\"sku\":\"A-1\",\"qty\":2,\"note\":\"é\\u0000\"}".utf8)
    let response = try request(
      port: proxy.port, method: "PUT", target: "/api/v1/echo/items/42?b=2&a=1&x=%2F",
      headers: [
        ("Authorization", "Bearer app-token-must-not-pass"), ("Proxy-Authorization", "Basic eA=="), ("Connection", "keep-alive, X-Hop"),
        ("X-Hop", "drop me"), ("Keep-Alive", "timeout=5"), ("X-Custom", "kept  value"), ("Content-Type", "application/json"),
        ("Proxy", "http://attacker.invalid:3128"),
      ], body: body)
    #expect(response.status == 200)
    let echo = try #require(response.json)
    #expect(echo["method"] as? String == "PUT")
    #expect(echo["target"] as? String == "/api/v1/echo/items/42?b=2&a=1&x=%2F")
    #expect(echo["body_base64"] as? String == Data(body).base64EncodedString())
    let headers = (echo["headers"] as? [[String]] ?? []).map { ($0[0].lowercased(), $0[1]) }
    func values(_ name: String) -> [String] { headers.filter { $0.0 == name }.map(\.1) }
    let issued = proxy.sandbox.issuedSecrets
    let authorization = try #require(values("authorization").first)
    #expect(values("authorization").count == 1)
    #expect(authorization.hasPrefix("Bearer "))
    #expect(issued.contains(String(authorization.dropFirst("Bearer ".count))))
    #expect(values("proxy-authorization").isEmpty)
    #expect(values("proxy").isEmpty)
    #expect(values("x-hop").isEmpty)
    #expect(values("keep-alive").isEmpty)
    #expect(values("x-custom") == ["kept  value"])
    #expect(values("content-type") == ["application/json"])
    #expect(values("user-agent") == ["authproxy/\(AuthProxyVersion.current)"])
    #expect(values("host") == ["localhost:\(proxy.sandbox.port)"])
    #expect(values("accept").isEmpty, "curl must not add an Accept the app did not send")
    let requestID = try #require(response.header("X-Request-ID"))
    #expect(values("x-request-id") == [requestID])
    #expect(RequestID.isSane(requestID) && requestID.count == 36)
  }

  @Test func keepsASaneRequestIDAndReplacesAnInsaneOne() throws {
    let proxy = try ProxyHarness()
    defer { proxy.stop() }
    let kept = try proxy.get("/api/v1/echo", headers: [("X-Request-ID", "app-1234:abc.def_9")])
    #expect(kept.header("X-Request-ID") == "app-1234:abc.def_9")
    let echoed = (kept.json?["headers"] as? [[String]] ?? []).first { $0[0].lowercased() == "x-request-id" }?[1]
    #expect(echoed == "app-1234:abc.def_9")
    let replaced = try proxy.get("/api/v1/echo", headers: [("X-Request-ID", "has spaces and <html>")])
    let fresh = try #require(replaced.header("X-Request-ID"))
    #expect(fresh != "has spaces and <html>")
    #expect(fresh.count == 36)
    let lines = proxy.accessLog(count: 2)
    #expect(lines.contains { $0["request_id"] as? String == "app-1234:abc.def_9" })
    #expect(lines.contains { $0["request_id"] as? String == fresh })
  }

  @Test func fiftyConcurrentFirstRequestsCauseExactlyOneLogin() throws {
    // The sandbox answers logins only after the 50 requests are all in: a slow API at start-up.
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    sandbox.setLoginDelay(0.5)
    let proxy = try ProxyHarness(workers: 2, sandbox: sandbox)
    defer { proxy.stop() }
    var connections: [RawConnection] = []
    for i in 0..<50 {
      let connection = try RawConnection(port: proxy.port)
      try connection.send(requestBytes(method: "GET", target: "/api/v1/echo?i=\(i)"))
      connections.append(connection)
    }
    let statuses = try connections.map { try $0.readResponse().status }
    #expect(statuses.allSatisfy { $0 == 200 }, "statuses: \(statuses)")
    #expect(proxy.sandbox.counters.logins == 1)
    #expect(proxy.sandbox.counters.apiRequests == 50)
  }

  @Test func aTokenExpiringDuringTrafficFailsNoRequest() throws {
    let proxy = try ProxyHarness(accessLifetime: 2)
    defer { proxy.stop() }
    let start = Date()
    var statuses: [Int] = []
    while Date().timeIntervalSince(start) < 5 {
      statuses.append(try proxy.get("/api/v1/echo").status)
    }
    #expect(statuses.count > 10)
    #expect(statuses.allSatisfy { $0 == 200 }, "non-200: \(statuses.filter { $0 != 200 })")
    let counters = proxy.sandbox.counters
    #expect(counters.refreshes >= 2, "a 2 s token over 5 s needs refreshing")
    #expect(counters.logins == 1, "refresh, not login, renews the token")
    #expect(counters.unauthorizedAPIRequests == 0, "an expired token is never sent")
  }

  @Test func aRefusedRefreshFallsBackToLogin() throws {
    let proxy = try ProxyHarness(accessLifetime: 2)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    proxy.sandbox.revokeAllTokens()
    #expect(eventually(timeout: 10) { proxy.sandbox.counters.logins >= 2 })
    #expect(proxy.sandbox.counters.failedRefreshes >= 1)
    #expect(eventually { (try? proxy.get("/api/v1/echo").status) == 200 })
  }

  @Test func anUntrustedUpstreamCertificateGives502AndNoRequestReachesIt() throws {
    let proxy = try ProxyHarness(trustSandboxCA: false)
    defer { proxy.stop() }
    let response = try proxy.get("/api/v1/orders")
    #expect(response.status == 502)
    #expect(response.errorCode == "upstream_tls")
    #expect(response.errorMessage?.contains("upstream certificate not trusted") == true)
    #expect((response.json?["error"] as? [String: Any])?["request_id"] as? String == response.header("X-Request-ID"))
    let counters = proxy.sandbox.counters
    #expect(counters.logins + counters.failedLogins + counters.apiRequests + counters.unauthorizedAPIRequests == 0)
    #expect(try proxy.admin("/readyz").status == 503)
  }

  @Test func upstreamTimeoutGives504() throws {
    let proxy = try ProxyHarness(flags: ["timeout": "1s"])
    defer { proxy.stop() }
    let response = try proxy.get("/api/v1/slow?ms=3000")
    #expect(response.status == 504)
    #expect(response.errorCode == "upstream_timeout")
  }

  @Test func anUnreachableUpstreamAfterLoginGives502() throws {
    let proxy = try ProxyHarness()
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    proxy.sandbox.stop()
    let response = try proxy.get("/api/v1/echo")
    #expect(response.status == 502)
    #expect(response.errorCode == "upstream_unreachable" || response.errorCode == "upstream_broken")
  }

  @Test func noTokenGives503WithTheReasonAndReadinessSaysIt() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    sandbox.failLogins(.invalidCredentials)
    let proxy = try ProxyHarness(sandbox: sandbox)
    defer { proxy.stop() }
    #expect(eventually { proxy.sandbox.counters.failedLogins >= 1 })
    let response = try proxy.get("/api/v1/echo")
    #expect(response.status == 503)
    #expect(response.errorCode == "no_token")
    #expect(response.errorMessage?.contains("invalid credentials") == true)
    let ready = try proxy.admin("/readyz")
    #expect(ready.status == 503)
    #expect(ready.text.contains("invalid credentials"))
    #expect(try proxy.admin("/healthz").status == 200)
  }

  @Test func readinessTurnsTrueOnceATokenIsHeld() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    sandbox.setLoginDelay(1)
    let proxy = try ProxyHarness(sandbox: sandbox)
    defer { proxy.stop() }
    #expect(try proxy.admin("/readyz").status == 503)
    #expect(eventually { (try? proxy.admin("/readyz").status) == 200 })
    #expect(try proxy.admin("/healthz").status == 200)
    #expect(try proxy.admin("/metricz").status == 404)
  }

  @Test func bodiesOverMaxBodyGet413JSONAndNeverReachTheAPI() throws {
    let proxy = try ProxyHarness(flags: ["max-body": "1KiB"])
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    let before = proxy.sandbox.counters.apiRequests
    let response = try request(port: proxy.port, method: "POST", target: "/api/v1/orders", body: [UInt8](repeating: 0x61, count: 2048))
    #expect(response.status == 413)
    #expect(response.errorCode == "body_too_large")
    let small = try request(port: proxy.port, method: "POST", target: "/api/v1/echo", body: [UInt8](repeating: 0x61, count: 1024))
    #expect(small.status == 200)
    #expect(proxy.sandbox.counters.apiRequests == before + 1)
  }

  @Test func nonOriginFormTargetsAndConnectGet400() throws {
    let proxy = try ProxyHarness()
    defer { proxy.stop() }
    for raw in [
      "GET http://evil.example/api/v1/echo HTTP/1.1\r\nHost: evil.example\r\n\r\n",
      "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
      "GET api/v1/echo HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
      let connection = try RawConnection(port: proxy.port)
      try connection.send(raw)
      let response = try connection.readResponse()
      #expect(response.status == 400, "\(raw)")
      #expect(response.errorCode == "bad_request")
      #expect(response.header("Content-Type") == "application/json")
    }
    #expect(proxy.sandbox.counters.apiRequests == 0)
  }

  @Test func theAuthPathsAreTheProxysOwn() throws {
    let proxy = try ProxyHarness()
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    for target in ["/auth/login", "/auth/logout", "/auth//refresh/", "/AUTH/Logout?x=1"] {
      let response = try request(port: proxy.port, method: "POST", target: target, body: Array("{}".utf8))
      #expect(response.status == 403, "\(target)")
      #expect(response.errorCode == "forbidden")
    }
    #expect(proxy.sandbox.counters.logins == 1)
    #expect(proxy.sandbox.counters.logouts == 0)
  }

  @Test func appsReachOnlyPathsUnderTheAPIPrefix() throws {
    let proxy = try ProxyHarness()
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    let before = proxy.sandbox.counters
    // Variants of the auth paths that some routers trim or send to the same handler, and
    // anything else outside /api/: refused before any byte goes upstream.
    for target in [
      "/auth/logout%20", "/auth/logout%00", "/auth/logout.json", "/auth/logout~", "/auth/logout%3f", "/auth/login%00x",
      "/", "/health", "/api/../auth/logout", "/v2/products",
    ] {
      let response = try request(port: proxy.port, method: "POST", target: target, body: Array("{}".utf8))
      #expect(response.status == 403, "\(target)")
      #expect(response.errorCode == "forbidden")
    }
    let refused = try request(port: proxy.port, target: "/v2/products")
    #expect(refused.errorMessage == "apps reach only the API's paths under /api/ through the proxy (--api-prefix)")
    #expect(proxy.sandbox.counters == before)
    #expect(try proxy.get("/API/v1/echo").status != 403)
  }

  @Test func upstreamConnectionsAreReusedWithinAWorker() throws {
    let proxy = try ProxyHarness(workers: 1)
    defer { proxy.stop() }
    let ports = try (0..<5).map { _ in try proxy.get("/api/v1/echo").json?["peer_port"] as? Int }
    #expect(ports.allSatisfy { $0 != nil })
    #expect(Set(ports.compactMap { $0 }).count == 1, "one kept-alive upstream connection: \(ports)")
  }

  @Test func headPassesTheUpstreamsContentLengthWithoutABody() throws {
    let proxy = try ProxyHarness()
    defer { proxy.stop() }
    let connection = try RawConnection(port: proxy.port)
    try connection.send(requestBytes(method: "HEAD", target: "/api/v1/bytes?size=1234"))
    let head = try connection.readResponse(forHEAD: true)
    #expect(head.status == 200)
    #expect(head.header("Content-Length") == "1234")
    try connection.send(requestBytes(method: "GET", target: "/api/v1/echo"))
    #expect(try connection.readResponse().status == 200, "no stray body bytes after the HEAD answer")
  }

  @Test func listHeadersPassThroughUntouched() throws {
    let proxy = try ProxyHarness()
    defer { proxy.stop() }
    let page = try proxy.get("/api/v1/products?page=2&limit=10")
    #expect(page.status == 200)
    #expect(page.header("X-Page") == "2")
    #expect(page.header("X-Total-Count") == "45")
    #expect(page.header("X-Has-More") == "true")
  }

  @Test func theAccessLogHasEveryFieldAndNoQueryStringOrSecret() throws {
    let proxy = try ProxyHarness()
    defer { proxy.stop() }
    _ = try proxy.get("/api/v1/echo/a?token=query-secret-123", headers: [("Authorization", "Bearer app-secret-456")])
    _ = try request(port: proxy.port, method: "POST", target: "/auth/login", body: Array("{}".utf8))
    let lines = proxy.accessLog(count: 2)
    let ok = try #require(lines.first { $0["status"] as? Int == 200 })
    for field in [
      "ts", "request_id", "client", "method", "path", "status", "upstream_status", "duration_ms", "upstream_ms", "bytes_in",
      "bytes_out", "attempts", "reauth", "error",
    ] {
      #expect(ok.keys.contains(field), "missing \(field)")
    }
    #expect(ok["path"] as? String == "/api/v1/echo/a")
    #expect(ok["client"] as? String == "127.0.0.1")
    #expect(ok["upstream_status"] as? Int == 200)
    #expect(ok["attempts"] as? Int == 1)
    #expect((ok["bytes_out"] as? Int ?? 0) > 0)
    let refused = try #require(lines.first { $0["status"] as? Int == 403 })
    #expect(refused["error"] as? String == "forbidden")
    let raw = try String(contentsOfFile: proxy.accessLogPath, encoding: .utf8)
    for secret in ["query-secret-123", "app-secret-456", SandboxAPI.demoUsers[0].password] + proxy.sandbox.issuedSecrets {
      #expect(!raw.contains(secret))
    }
  }
}

extension ProxyPathTests {
  /// base64(sha256(SPKI)) of a PEM certificate, computed by the openssl command line.
  private func spkiPin(_ certificate: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = [
      "-c",
      "openssl x509 -pubkey -noout -in '\(certificate)' | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
    ]
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    process.waitUntilExit()
    return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
  }

  @Test func aPinnedUpstreamKeyIsEnforced() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let pin = try spkiPin(URL(fileURLWithPath: sandbox.caPath).deletingLastPathComponent().appendingPathComponent("server.pem").path)
    #expect(pin.count == 44)
    let pinned = try ProxyHarness(flags: ["pin-sha256": pin], sandbox: sandbox)
    defer { pinned.stop() }
    #expect(try pinned.get("/api/v1/echo").status == 200)
    let wrong = try ProxyHarness(flags: ["pin-sha256": String(repeating: "A", count: 43) + "="], sandbox: sandbox)
    defer { wrong.stop() }
    let refused = try wrong.get("/api/v1/echo")
    #expect(refused.status == 502)
    #expect(refused.errorMessage?.contains("pinned key") == true)
  }

  @Test func aClientCertificateIsShownToAnUpstreamThatAsksForOne() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki", requireClientCertificate: true)
    defer { sandbox.stop() }
    let pki = URL(fileURLWithPath: sandbox.caPath).deletingLastPathComponent()
    let withCertificate = try ProxyHarness(
      flags: [
        "client-cert": pki.appendingPathComponent("server.pem").path, "client-key": pki.appendingPathComponent("server-key.pem").path,
      ], sandbox: sandbox)
    defer { withCertificate.stop() }
    // The login (control plane) and the request (data path) both went over mutual TLS.
    #expect(try withCertificate.get("/api/v1/echo").status == 200)
    #expect(sandbox.counters.logins == 1)

    let without = try ProxyHarness(sandbox: sandbox)
    defer { without.stop() }
    let refused = try without.get("/api/v1/echo")
    #expect(refused.status == 502)
    // TLS 1.3 servers refuse a missing client certificate after the client's side of the
    // handshake is done: the client learns it from an alert on its first read.
    #expect(["upstream_tls", "upstream_broken"].contains(refused.errorCode ?? ""), "\(refused.errorCode ?? "nil")")
    #expect(sandbox.counters.logins == 1, "no login without the certificate")
  }
}

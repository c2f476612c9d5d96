import AuthProxy
import Foundation
import SandboxAPI
import Testing

/// Hostile and malformed requests on raw sockets: each gets the proxy's JSON error, the connection
/// is closed, and nothing reaches the API (SPEC §4: ambiguous requests are refused, never guessed).
@Suite(.serialized) struct HostileInputTests {
  // MARK: Framing: Content-Length and Transfer-Encoding

  @Test func bothContentLengthAndTransferEncodingGet400() throws {
    try expectRefused(
      "POST /api/v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      status: 400, code: "bad_request")
  }

  @Test func twoDifferingContentLengthsGet400() throws {
    try expectRefused(
      "POST /api/v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", status: 400,
      code: "bad_request")
  }

  @Test func aSignedContentLengthGets400() throws {
    try expectRefused("POST /api/v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", status: 400, code: "bad_request")
  }

  @Test(arguments: ["Content-Length : 5", "Host : x", "X-Custom\t: y", "Transfer-Encoding : chunked"])
  func whitespaceBeforeTheColonGets400(line: String) throws {
    try expectRefused("POST /api/v1/echo HTTP/1.1\r\nHost: x\r\n\(line)\r\n\r\nhello", status: 400, code: "bad_request")
  }

  @Test(arguments: ["X-Custom: a\r\n b", "X-Custom: a\r\n\tb", "X-Custom: a\r\n \r\nX-Other: c"])
  func obsoleteLineFoldingGets400(lines: String) throws {
    try expectRefused("GET /api/v1/echo HTTP/1.1\r\nHost: x\r\n\(lines)\r\n\r\n", status: 400, code: "bad_request")
  }

  @Test(arguments: ["gzip, chunked", "chunked, gzip", "gzip", "identity", "chunked, chunked", "xchunked"])
  func aTransferEncodingOtherThanChunkedGets400(value: String) throws {
    try expectRefused(
      "POST /api/v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \(value)\r\n\r\n0\r\n\r\n", status: 400, code: "bad_request")
  }

  /// RFC 9112 §7.4: a client must not name "chunked" in TE; lenient servers take it without a word.
  @Test(arguments: ["gzip, chunked", "chunked", "trailers, CHUNKED;q=0.5", "deflate ,chunked "])
  func aTEHeaderNamingChunkedGets400(value: String) throws {
    try expectRefused("GET /api/v1/echo HTTP/1.1\r\nHost: x\r\nTE: \(value)\r\n\r\n", status: 400, code: "bad_request")
  }

  // MARK: Request line

  @Test(arguments: [
    "GET http://evil.example/api/v1/echo HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    "GET https://evil.example:443/api/v1/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "GET //evil.example/api/v1/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "GET HTTP://EVIL.EXAMPLE/api/v1/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
  ])
  func anAbsoluteFormTargetNamingAnotherHostGets400(raw: String) throws {
    try expectRefused(raw, status: 400, code: "bad_request")
  }

  @Test func connectGets400() throws {
    try expectRefused("CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", status: 400, code: "bad_request")
  }

  @Test func connectWithAnOriginFormTargetGets400() throws {
    try expectRefused("CONNECT /api/v1/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", status: 400, code: "bad_request")
  }

  @Test func traceGets400() throws {
    try expectRefused("TRACE /api/v1/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", status: 400, code: "bad_request")
  }

  @Test func aRequestLineOverTheLimitGets414() throws {
    // The default limit is 8192 bytes; this line is 8193 + 9 long.
    let target = "/api/v1/echo?q=" + String(repeating: "a", count: 8192 - "GET /api/v1/echo?q=".count)
    let line = "GET \(target) HTTP/1.1"
    #expect(line.utf8.count > 8192)
    try expectRefused("\(line)\r\nHost: x\r\n\r\n", status: 414, code: "uri_too_long")
  }

  @Test func aRequestLineJustUnderTheLimitIsProxied() throws {
    let proxy = try HostileProxy()
    defer { proxy.stop() }
    let target = "/api/v1/echo?q=" + String(repeating: "a", count: 8192 - "GET /api/v1/echo?q= HTTP/1.1".count)
    #expect("GET \(target) HTTP/1.1".utf8.count == 8192)
    let response = try request(port: proxy.port, target: target)
    #expect(response.status == 200)
    #expect(proxy.sandbox.lastAPIRequest?.target == target)
  }

  // MARK: Header fields

  @Test(arguments: [
    ("NUL in a value", "X-Custom: a\u{0}b"), ("CR alone in a value", "X-Custom: a\rb"), ("0x01 in a value", "X-Custom: a\u{1}b"),
    ("DEL in a value", "X-Custom: a\u{7F}b"), ("NUL in a name", "X-Cus\u{0}tom: a"), ("CR alone in a name", "X-Cus\rtom: a"),
    ("0x01 in a name", "X-Cus\u{1}tom: a"), ("DEL in a name", "X-Cus\u{7F}tom: a"),
  ])
  func controlCharactersInHeaderNamesOrValuesGet400(what: String, line: String) throws {
    try expectRefused("GET /api/v1/echo HTTP/1.1\r\nHost: x\r\n\(line)\r\n\r\n", status: 400, code: "bad_request", what)
  }

  @Test func anEmptyHeaderNameGets400() throws {
    try expectRefused("GET /api/v1/echo HTTP/1.1\r\nHost: x\r\n: value\r\n\r\n", status: 400, code: "bad_request")
  }

  @Test func aHeaderBlockOverTheLimitGets431() throws {
    // Ten 7000-byte fields: under the field count, over the 64 KiB head limit.
    let big = (0..<10).map { "X-Big-\($0): " + String(repeating: "v", count: 7000) + "\r\n" }.joined()
    try expectRefused("GET /api/v1/echo HTTP/1.1\r\nHost: x\r\n\(big)\r\n", status: 431, code: "headers_too_large")
  }

  @Test func tooManyHeadersGet431() throws {
    // The Host line and 100 more: 101 fields, the limit is 100.
    let many = (0..<100).map { "X-H-\($0): v\r\n" }.joined()
    try expectRefused("GET /api/v1/echo HTTP/1.1\r\nHost: x\r\n\(many)\r\n", status: 431, code: "headers_too_large")
  }

  // MARK: Bodies over --max-body

  @Test func aContentLengthBodyOverMaxBodyGets413() throws {
    let body = String(repeating: "b", count: 1025)
    try expectRefused(
      "POST /api/v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n\(body)", status: 413, code: "body_too_large",
      flags: ["max-body": "1KiB"])
  }

  @Test func aChunkedBodyOverMaxBodyGets413() throws {
    // 1024 bytes are fine, the 1025th is one too many.
    let chunk = String(repeating: "c", count: 1024)
    try expectRefused(
      "POST /api/v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n\(chunk)\r\n1\r\nc\r\n0\r\n\r\n", status: 413,
      code: "body_too_large", flags: ["max-body": "1KiB"])
  }

  @Test func aChunkedBodyOfExactlyMaxBodyIsProxied() throws {
    let proxy = try HostileProxy(flags: ["max-body": "1KiB"])
    defer { proxy.stop() }
    let connection = try RawConnection(port: proxy.port, timeoutSeconds: 10)
    let chunk = String(repeating: "c", count: 1000)
    try connection.send(
      "POST /api/v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n\(chunk)\r\n18\r\n\(chunk.prefix(24))\r\n0\r\n\r\n"
    )
    let response = try connection.readResponse()
    #expect(response.status == 200)
    #expect(response.json?["body_length"] as? Int == 1024)
  }

  // MARK: Request smuggling

  /// CL.TE: a front end that framed by Content-Length would pass the hidden request along in the body;
  /// one that frames by chunks would see it as the next request.
  @Test func aCLTESmugglingAttemptIsRefusedAndTheHiddenRequestNeverReachesTheAPI() throws {
    let hidden = "GET /api/v1/echo?smuggled=cl-te HTTP/1.1\r\nHost: x\r\n\r\n"
    let body = "0\r\n\r\n" + hidden
    try expectRefused(
      "POST /api/v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\nTransfer-Encoding: chunked\r\n\r\n\(body)",
      status: 400, code: "bad_request")
  }

  /// TE.CL: the hidden request sits inside a chunk; a Content-Length framer stops after 4 bytes.
  @Test func aTECLSmugglingAttemptIsRefusedAndTheHiddenRequestNeverReachesTheAPI() throws {
    let hidden = "GET /api/v1/echo?smuggled=te-cl HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nx=1"
    let chunk = String(hidden.utf8.count, radix: 16) + "\r\n" + hidden + "\r\n0\r\n\r\n"
    try expectRefused(
      "POST /api/v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\(chunk)", status: 400,
      code: "bad_request")
  }

  /// The same attack with the second framing header disguised so that one parser does not see it.
  @Test(arguments: [
    "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity", "Transfer-Encoding:\tchunked\r\nContent-Length: 60",
    "Transfer-Encoding : chunked\r\nContent-Length: 60", "Transfer-Encoding: chunked\r\nContent-Length : 60",
    "Transfer-Encoding: chunked\r\nX-Pad: x\r\n Content-Length: 60", "Transfer-Encoding: \"chunked\"\r\nContent-Length: 60",
    "Content-Length: 60\r\nTransfer-Encoding: chunked\u{0}",
  ])
  func aDisguisedSmugglingAttemptIsRefusedAndTheHiddenRequestNeverReachesTheAPI(framing: String) throws {
    let hidden = "GET /api/v1/echo?smuggled=disguised HTTP/1.1\r\nHost: x\r\n\r\n"
    try expectRefused("POST /api/v1/echo HTTP/1.1\r\nHost: x\r\n\(framing)\r\n\r\n0\r\n\r\n\(hidden)", status: 400, code: "bad_request")
  }

  /// Body bytes on a HEAD: a server reads no body for HEAD, so they would become the next request.
  @Test func aHEADWithABodyIsRefusedAndTheBodyIsNeverParsedAsARequest() throws {
    let hidden = "GET /api/v1/echo?smuggled=head HTTP/1.1\r\nHost: x\r\n\r\n"
    try expectRefused(
      "HEAD /api/v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(hidden.utf8.count)\r\n\r\n\(hidden)", status: 400,
      code: "bad_request")
  }

  // MARK: Auth-path variants (found by scripts/fuzz)

  /// Written so that RequestPolicy.normalize once missed them, while a router resolves them to an auth path:
  /// a path parameter on a dot segment (Tomcat reads `..;p` as `..`), a combining mark after a slash
  /// (a grapheme to Swift, a separator to a router), a double percent-encoding.
  @Test(arguments: ["/x/..;p/auth/logout", "/auth/.;p/logout", "/auth/%CC%81/../logout", "/auth/%256Cogout", "/auth/%2e%2e;/auth/logout"])
  func anAuthPathVariantGets403AndNeverReachesTheAPI(target: String) throws {
    let proxy = try HostileProxy()
    defer { proxy.stop() }
    let before = proxy.sandbox.counters
    let response = try request(port: proxy.port, method: "POST", target: target, body: Array("{}".utf8))
    #expect(response.status == 403)
    #expect(response.errorCode == "forbidden")
    let after = proxy.sandbox.counters
    #expect(after.apiRequests == before.apiRequests && after.logouts == 0 && after.logins == before.logins)
  }

  // MARK: Well-behaved clients are unaffected

  @Test func aValidPipelinedPairOnOneConnectionGetsBothAnswersInOrder() throws {
    let proxy = try HostileProxy()
    defer { proxy.stop() }
    let before = proxy.sandbox.counters.apiRequests
    let connection = try RawConnection(port: proxy.port, timeoutSeconds: 10)
    let body = Array("{\"n\":2}".utf8)
    try connection.send(
      requestBytes(method: "GET", target: "/api/v1/echo?n=1", headers: [("X-Request-ID", "pipelined-1")])
        + requestBytes(method: "POST", target: "/api/v1/echo?n=2", headers: [("X-Request-ID", "pipelined-2")], body: body))
    let first = try connection.readResponse()
    let second = try connection.readResponse()
    #expect(first.status == 200)
    #expect(first.json?["target"] as? String == "/api/v1/echo?n=1")
    #expect(first.header("X-Request-ID") == "pipelined-1")
    #expect(second.status == 200)
    #expect(second.json?["method"] as? String == "POST")
    #expect(second.json?["target"] as? String == "/api/v1/echo?n=2")
    #expect(second.json?["body_base64"] as? String == Data(body).base64EncodedString())
    #expect(second.header("X-Request-ID") == "pipelined-2")
    // The connection stays usable for a third request.
    try connection.send(requestBytes(method: "GET", target: "/api/v1/echo?n=3"))
    #expect(try connection.readResponse().json?["target"] as? String == "/api/v1/echo?n=3")
    #expect(proxy.sandbox.counters.apiRequests == before + 3)
  }

  @Test func aBadRequestPipelinedBehindAGoodOneIsRefusedOnlyAfterTheGoodOneIsAnswered() throws {
    let proxy = try HostileProxy()
    defer { proxy.stop() }
    let before = proxy.sandbox.counters.apiRequests
    let connection = try RawConnection(port: proxy.port, timeoutSeconds: 10)
    try connection.send(
      requestBytes(method: "GET", target: "/api/v1/echo?good", headers: [("X-Request-ID", "good-1")])
        + Array("GET /api/v1/echo?bad HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".utf8))
    let first = try connection.readResponse()
    #expect(first.status == 200)
    #expect(first.header("X-Request-ID") == "good-1")
    let second = try connection.readResponse()
    #expect(second.status == 400)
    #expect(second.errorCode == "bad_request")
    #expect(try connection.isClosedByPeer(), "the connection ends after the refusal")
    #expect(proxy.sandbox.counters.apiRequests == before + 1)
  }

  @Test func aClientExpectingContinueGetsItThenItsAnswer() throws {
    let proxy = try HostileProxy()
    defer { proxy.stop() }
    let connection = try RawConnection(port: proxy.port, timeoutSeconds: 10)
    let body = Array("{\"expect\":true}".utf8)
    try connection.send(
      "POST /api/v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
        + "Content-Length: \(body.count)\r\n\r\n")
    let interim = try connection.readResponse()
    #expect(interim.status == 100, "the body is asked for before it is sent")
    try connection.send(body)
    let response = try connection.readResponse()
    #expect(response.status == 200)
    #expect(response.json?["body_base64"] as? String == Data(body).base64EncodedString())
  }

  @Test func afterHostileRequestsFreshConnectionsStillWork() throws {
    let proxy = try HostileProxy()
    defer { proxy.stop() }
    let hostile = [
      "POST /api/v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "GET /api/v1/echo HTTP/1.1\r\nHost: x\r\nX-A: \u{0}\r\n\r\n", "CONNECT evil.example:443 HTTP/1.1\r\n\r\n",
      "GET /api/v1/echo HTTP/1.1\r\nHost : x\r\n\r\n", "\u{16}\u{3}\u{1}\u{2}\u{0}\u{1}\u{0}\u{1}\u{fc}\u{3}\u{3}",  // a TLS ClientHello
      "GET /api/v1/echo HTTP/2.0\r\nHost: x\r\n\r\n", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ]
    // All at once on separate connections, then every one answered and closed.
    let connections = try hostile.map { raw in
      let connection = try RawConnection(port: proxy.port, timeoutSeconds: 10)
      try connection.send(raw)
      return connection
    }
    for (connection, raw) in zip(connections, hostile) {
      let response = try connection.readResponse()
      #expect(response.status == 400, "\(raw.debugDescription)")
      #expect(response.errorCode == "bad_request")
      #expect(try connection.isClosedByPeer(), "\(raw.debugDescription)")
    }
    let before = proxy.sandbox.counters.apiRequests
    for i in 0..<5 {
      let response = try request(port: proxy.port, target: "/api/v1/echo?after=\(i)")
      #expect(response.status == 200)
      #expect(response.json?["target"] as? String == "/api/v1/echo?after=\(i)")
    }
    #expect(proxy.sandbox.counters.apiRequests == before + 5)
    #expect(try proxy.admin("/healthz").status == 200)
    let refusals = proxy.accessLog(count: 1 + hostile.count + 5).filter { $0["status"] as? Int == 400 }
    #expect(refusals.count == hostile.count, "one access-log line per refused request")
    #expect(refusals.allSatisfy { $0["error"] as? String == "bad_request" })
  }

  @Test func aRefusedRequestEchoesItsSaneRequestID() throws {
    let proxy = try HostileProxy()
    defer { proxy.stop() }
    let connection = try RawConnection(port: proxy.port, timeoutSeconds: 10)
    try connection.send("GET /api/v1/echo HTTP/1.1\r\nX-Request-ID: hostile-42\r\nHost : x\r\n\r\n")
    let response = try connection.readResponse()
    #expect(response.status == 400)
    #expect(response.header("X-Request-ID") == "hostile-42")
    #expect((response.json?["error"] as? [String: Any])?["request_id"] as? String == "hostile-42")
  }

  @Test func aRefusedRequestIsLoggedWithItsMethodAndPathOnceItsLineWasRead() throws {
    let proxy = try HostileProxy(flags: ["max-body": "1KiB"])
    defer { proxy.stop() }
    let cases: [(raw: String, status: Int, method: String, path: String)] = [
      ("POST /api/v1/orders?coupon=private HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n", 413, "POST", "/api/v1/orders"),
      ("DELETE /api/v1/echo/7 HTTP/1.1\r\nHost : x\r\n\r\n", 400, "DELETE", "/api/v1/echo/7"),
      ("GET /api/v1/echo#part HTTP/1.1\r\nHost: x\r\n\r\n", 400, "", ""),  // the line itself refused
      ("GET /api/v1/echo HTTP/2.0\r\nHost: x\r\n\r\n", 400, "", ""),
    ]
    var ids: [String] = []
    for item in cases {
      let connection = try RawConnection(port: proxy.port, timeoutSeconds: 10)
      try connection.send(item.raw)
      let response = try connection.readResponse()
      #expect(response.status == item.status, "\(item.raw.debugDescription)")
      ids.append(try #require(response.header("X-Request-ID")))
    }
    let lines = proxy.accessLog(count: 1 + cases.count)
    for (item, id) in zip(cases, ids) {
      let line = try #require(lines.first { $0["request_id"] as? String == id }, "\(item.raw.debugDescription)")
      #expect(line["status"] as? Int == item.status)
      #expect(line["method"] as? String == item.method, "\(item.raw.debugDescription)")
      #expect(line["path"] as? String == item.path, "\(item.raw.debugDescription)")
    }
    #expect(!lines.contains { "\($0)".contains("private") }, "the query string stays out of the log")
  }
}

// MARK: - Support

/// A proxy with one worker (a request that slipped through would be forwarded before the next
/// connection's) that already holds a token (it would be forwarded at once).
private final class HostileProxy {
  let harness: ProxyHarness
  var port: Int { harness.port }
  var sandbox: SandboxAPI { harness.sandbox }

  init(flags: [String: String] = [:]) throws {
    harness = try ProxyHarness(workers: 1, flags: flags)
    let warmUp = try harness.get("/api/v1/echo?warm-up")
    guard warmUp.status == 200 else { throw HTTPClientError(description: "warm-up answered \(warmUp.status)") }
  }

  func admin(_ path: String) throws -> HTTPResponse { try harness.admin(path) }
  func accessLog(count: Int) -> [[String: Any]] { harness.accessLog(count: count) }
  func stop() { harness.stop() }
}

/// Sends `raw` as is on a new connection and expects the proxy's JSON error `status`/`code`, the
/// connection closed after it, nothing at the API, and the proxy still serving a fresh connection.
private func expectRefused(
  _ raw: String, status: Int, code: String, _ what: String = "", flags: [String: String] = [:],
  sourceLocation: SourceLocation = #_sourceLocation
) throws {
  let proxy = try HostileProxy(flags: flags)
  defer { proxy.stop() }
  let before = proxy.sandbox.counters
  let connection = try RawConnection(port: proxy.port, timeoutSeconds: 10)
  try connection.send(raw)
  let response = try connection.readResponse()
  #expect(response.status == status, "\(what)", sourceLocation: sourceLocation)
  #expect(response.header("Content-Type") == "application/json", sourceLocation: sourceLocation)
  let error = response.json?["error"] as? [String: Any]
  #expect(error?["code"] as? String == code, "\(what): \(response.text)", sourceLocation: sourceLocation)
  #expect((error?["message"] as? String)?.isEmpty == false, sourceLocation: sourceLocation)
  let requestID = error?["request_id"] as? String
  #expect(requestID != nil && requestID == response.header("X-Request-ID"), sourceLocation: sourceLocation)
  #expect(try connection.isClosedByPeer(), "the connection is closed after a refusal", sourceLocation: sourceLocation)

  // A fresh connection is served, and it is the only request the API saw.
  let probe = try request(port: proxy.port, target: "/api/v1/echo?probe")
  #expect(probe.status == 200, "a fresh connection still works", sourceLocation: sourceLocation)
  let after = proxy.sandbox.counters
  #expect(after.apiRequests == before.apiRequests + 1, "only the probe reached the API", sourceLocation: sourceLocation)
  #expect(after.unauthorizedAPIRequests == before.unauthorizedAPIRequests, sourceLocation: sourceLocation)
  #expect(
    after.logins + after.refreshes + after.logouts == before.logins + before.refreshes + before.logouts, sourceLocation: sourceLocation)
  #expect(proxy.sandbox.lastAPIRequest?.target == "/api/v1/echo?probe", sourceLocation: sourceLocation)
}

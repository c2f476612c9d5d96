import Testing

@testable import AuthProxy

// MARK: - Builders

private let ourAuthorization = Secret("Bearer proxy-token")
private let ourRequestID = "req-42"
private let ourUserAgent = "authproxy/test"

/// The wire form of an upstream request (the head, then the body).
private func upstreamRequest(_ appHeaders: [(String, String)], method: String = "GET", body: [UInt8] = []) -> String {
  let head = HeaderRewrite(userAgent: ourUserAgent).upstreamHead(
    method: method, target: "/base/v1/orders?page=2", host: "api.example:8443", appHeaders: appHeaders.map { (name: $0.0, value: $0.1) },
    authorization: ourAuthorization, requestID: ourRequestID, bodyLength: body.count)
  return String(decoding: head + body, as: UTF8.self)
}

/// The header lines of an upstream request, after the request line and Host.
private func upstreamLines(_ appHeaders: [(String, String)]) -> [String] {
  let head = upstreamRequest(appHeaders).split(separator: "\r\n\r\n", maxSplits: 1, omittingEmptySubsequences: false)[0]
  return head.split(separator: "\r\n", omittingEmptySubsequences: false).dropFirst(2).map(String.init)
}

private func responseLines(_ upstreamHeaders: [(String, String)]) -> [String] {
  HeaderRewrite(userAgent: ourUserAgent).responseHeaders(
    from: upstreamHeaders.map { (name: $0.0, value: $0.1) }, requestID: ourRequestID
  ).map { "\($0.name): \($0.value)" }
}

/// The lines whose header name is `name` (any case).
private func linesNamed(_ name: String, in lines: [String]) -> [String] {
  let lower = name.lowercased()
  return lines.filter { line in
    let end = line.firstIndex { $0 == ":" } ?? line.endIndex
    return line[..<end].lowercased() == lower
  }
}

// MARK: - Specification

@Suite struct HeaderRewriteTests {

  // MARK: Request side

  @Test func keepsOrdinaryHeadersInOrderAndAddsOurs() {
    let lines = upstreamLines([
      ("Accept", "application/json"), ("X-Custom", "a, b;  c"), ("Content-Type", "application/json; charset=utf-8"),
      ("Idempotency-Key", "k-1"), ("Cookie", "a=1"),
    ])
    #expect(
      lines == [
        "Accept: application/json", "X-Custom: a, b;  c", "Content-Type: application/json; charset=utf-8",
        "Idempotency-Key: k-1", "Cookie: a=1", "Authorization: Bearer proxy-token", "X-Request-ID: req-42",
        "User-Agent: authproxy/test",
      ])
  }

  @Test func startsWithTheRequestLineAndTheUpstreamsHost() {
    #expect(upstreamRequest([]).hasPrefix("GET /base/v1/orders?page=2 HTTP/1.1\r\nHost: api.example:8443\r\n"))
  }

  @Test func framesTheBodyWithItsLength() {
    let post = upstreamRequest([("Content-Type", "application/json")], method: "POST", body: Array("{\"a\":1}".utf8))
    #expect(post.hasSuffix("User-Agent: authproxy/test\r\nContent-Length: 7\r\n\r\n{\"a\":1}"))
    #expect(upstreamRequest([], method: "PUT").hasSuffix("Content-Length: 0\r\n\r\n"))
    #expect(!upstreamRequest([], method: "GET").contains("Content-Length"))
  }

  @Test(arguments: ["Authorization", "authorization", "AUTHORIZATION", "Proxy-Authorization"])
  func replacesTheAppsCredentials(name: String) {
    let lines = upstreamLines([(name, "Bearer app-token")])
    #expect(!lines.contains { $0.contains("app-token") })
    #expect(lines.filter { $0.hasPrefix("Authorization:") } == ["Authorization: Bearer proxy-token"])
    #expect(!lines.contains { $0.lowercased().hasPrefix("proxy-authorization") })
  }

  @Test(arguments: [
    "Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection", "Proxy-Foo",
    "proxy-anything", "Proxy", "PROXY", "Host", "Content-Length", "Expect", "Close",
  ])
  func dropsHopByHopAndFramingHeaders(name: String) {
    let lines = upstreamLines([(name, "app-value"), ("X-Kept", "1")])
    #expect(!lines.contains { $0.contains("app-value") })
    #expect(lines.contains("X-Kept: 1"))
  }

  @Test func dropsTheHeadersNamedInConnection() {
    let lines = upstreamLines([
      ("Connection", "keep-alive, X-Hop ,x-other"), ("X-Hop", "1"), ("X-Other", "2"), ("X-Kept", "3"),
    ])
    #expect(linesNamed("X-Hop", in: lines).isEmpty)
    #expect(linesNamed("X-Other", in: lines).isEmpty)
    #expect(linesNamed("Connection", in: lines).isEmpty)
    #expect(lines.contains("X-Kept: 3"))
  }

  @Test func setsRequestIDAndUserAgentExactlyOnce() {
    let lines = upstreamLines([("X-Request-ID", "app-id"), ("User-Agent", "curl/8"), ("x-request-id", "again")])
    #expect(linesNamed("X-Request-ID", in: lines) == ["X-Request-ID: req-42"])
    #expect(linesNamed("User-Agent", in: lines) == ["User-Agent: authproxy/test"])
  }

  @Test func sendsEmptyValuesEmpty() {
    let lines = upstreamLines([("X-Empty", ""), ("Accept", "*/*")])
    #expect(lines.first == "X-Empty: ")
  }

  @Test func addsNoHeaderTheAppDidNotSend() {
    let bare = upstreamLines([])
    #expect(bare == ["Authorization: Bearer proxy-token", "X-Request-ID: req-42", "User-Agent: authproxy/test"])
  }

  @Test func keepsRepeatedHeadersAndExactValues() {
    let lines = upstreamLines([("X-Tag", "one"), ("X-Tag", "two"), ("X-Spaced", " padded value ")])
    #expect(Array(lines.prefix(3)) == ["X-Tag: one", "X-Tag: two", "X-Spaced:  padded value "])
  }

  // MARK: Response side

  @Test func responseDropsHopByHopAndAddsOurRequestIDOnce() {
    let lines = responseLines([
      ("Content-Type", "application/json"), ("Content-Length", "12"), ("Connection", "close, X-Hop"), ("X-Hop", "1"),
      ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"), ("Trailer", "X-Sum"),
      ("X-Request-ID", "theirs"), ("X-Page", "2"), ("X-Total-Count", "57"), ("X-Has-More", "true"),
    ])
    #expect(
      lines == [
        "Content-Type: application/json", "Content-Length: 12", "X-Page: 2", "X-Total-Count: 57", "X-Has-More: true",
        "X-Request-ID: req-42",
      ])
  }

  @Test func responseKeepsSetCookieAndCacheHeaders() {
    let lines = responseLines([("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Cache-Control", "no-store")])
    #expect(lines == ["Set-Cookie: a=1", "Set-Cookie: b=2", "Cache-Control: no-store", "X-Request-ID: req-42"])
  }
}

@Suite struct ResponseFieldPassThroughTests {
  /// The proxy forwards the upstream's field lines as received (no decoding and re-encoding):
  /// obs-text bytes that are not UTF-8 reach the app unchanged, dropped lines leave no trace.
  @Test func keptLinesAreTheUpstreamBytes() {
    var fields = HTTPFields()
    fields.append(name: "X-Latin".utf8, value: [0x63, 0x61, 0x66, 0xE9])
    fields.append(name: "Connection".utf8, value: "keep-alive, X-Hop".utf8)
    fields.append(name: "x-hop".utf8, value: "1".utf8)
    fields.append(name: "X-Request-ID".utf8, value: "upstream-id".utf8)
    fields.append(name: "Content-Type".utf8, value: "application/json".utf8)
    let out = HeaderRewrite(userAgent: ourUserAgent).responseFields(from: fields, requestID: ourRequestID)
    let latin: [UInt8] = Array("X-Latin: caf".utf8) + [0xE9, 0x0D, 0x0A]
    let expected = latin + Array("Content-Type: application/json\r\nX-Request-ID: req-42\r\n".utf8)
    #expect(out.bytes == expected)
    #expect(out.count == 3)
    #expect(out.value(named: Array("content-type".utf8)) == "application/json")
    #expect(out.firstIndex(named: Array("x-hop".utf8)) == nil && out.firstIndex(named: FieldName.connection) == nil)
  }
}

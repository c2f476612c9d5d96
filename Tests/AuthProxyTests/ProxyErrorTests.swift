import Foundation
import Testing

@testable import AuthProxy

// MARK: - Builders

/// The `error` object of a proxy error body, parsed with Foundation's own JSON parser.
private func errorObject(_ body: [UInt8]) throws -> [String: Any] {
  let root = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
  #expect(root.count == 1)
  return try #require(root["error"] as? [String: Any])
}

private struct RawResponse {
  var statusLine: String
  var headers: [(name: String, value: String)]
  var body: [UInt8]
}

private func split(_ raw: [UInt8]) throws -> RawResponse {
  let separator = Array("\r\n\r\n".utf8)
  let end = try #require(
    raw.indices.first { raw[$0...].starts(with: separator) }, "no end of head in the raw response")
  let head = String(decoding: raw[..<end], as: UTF8.self)
  var lines = head.components(separatedBy: "\r\n")
  let statusLine = lines.removeFirst()
  let headers = lines.map { line -> (name: String, value: String) in
    let colon = line.firstIndex(of: ":") ?? line.endIndex
    return (String(line[..<colon]), line[colon...].dropFirst().trimmingCharacters(in: .whitespaces))
  }
  return RawResponse(statusLine: statusLine, headers: headers, body: Array(raw[(end + separator.count)...]))
}

// MARK: - Specification

@Suite struct ProxyErrorTests {

  @Test func bodyIsTheErrorJSONOfTheSpec() throws {
    let error = try errorObject(ProxyError.forbidden("client not allowed").body(requestID: "req-1"))
    #expect(error.count == 3)
    #expect(error["code"] as? String == "forbidden")
    #expect(error["message"] as? String == "client not allowed")
    #expect(error["request_id"] as? String == "req-1")
  }

  @Test func bodyStaysValidJSONWithAwkwardText() throws {
    let message = "quote \" backslash \\ newline \n tab \t control \u{01} separator \u{2028} café 😀"
    let error = try errorObject(ProxyError.badRequest(message).body(requestID: "id\"x"))
    #expect(error["message"] as? String == message)
    #expect(error["request_id"] as? String == "id\"x")
  }

  @Test func rawResponseIsACompleteHTTPResponse() throws {
    let error = ProxyError.tooLarge(limit: 1024)
    let raw = try split(error.rawResponse(requestID: "req-2"))
    #expect(raw.statusLine == "HTTP/1.1 413 Content Too Large")
    let contentLength = try #require(raw.headers.first { $0.name.lowercased() == "content-length" }?.value)
    #expect(Int(contentLength) == raw.body.count)
    #expect(raw.body == error.body(requestID: "req-2"))
    #expect(raw.headers.contains { $0.name == "Content-Type" && $0.value == "application/json" })
    #expect(raw.headers.contains { $0.name == "X-Request-ID" && $0.value == "req-2" })
    #expect(raw.headers.contains { $0.name == "Connection" && $0.value == "close" })
  }

  @Test func rawResponseCountsBytesNotCharacters() throws {
    let error = ProxyError.badRequest("naïve café — 😀")
    let raw = try split(error.rawResponse(requestID: "req-3"))
    let contentLength = try #require(raw.headers.first { $0.name == "Content-Length" }?.value)
    #expect(Int(contentLength) == raw.body.count)
    #expect(try errorObject(raw.body)["message"] as? String == "naïve café — 😀")
  }

  @Test(arguments: [
    (400, "HTTP/1.1 400 Bad Request"), (403, "HTTP/1.1 403 Forbidden"), (502, "HTTP/1.1 502 Bad Gateway"),
    (503, "HTTP/1.1 503 Service Unavailable"), (504, "HTTP/1.1 504 Gateway Timeout"),
  ])
  func rawResponseHasTheStatusLine(status: Int, statusLine: String) throws {
    let raw = try split(ProxyError(status: status, code: "x", message: "y").rawResponse(requestID: "r"))
    #expect(raw.statusLine == statusLine)
  }

  @Test func headersCarryJSONAndTheRequestID() {
    let headers = ProxyError.badRequest("x").headers(requestID: "req-4").map { "\($0.name): \($0.value)" }
    #expect(headers == ["Content-Type: application/json", "X-Request-ID: req-4"])
  }

  // MARK: The named errors

  @Test func namedErrorsHaveTheirStatusAndCode() {
    #expect(ProxyError.badRequest("x").status == 400)
    #expect(ProxyError.forbidden("x").status == 403)
    #expect(
      ProxyError.tooLarge(limit: 10) == ProxyError(status: 413, code: "body_too_large", message: ProxyError.tooLarge(limit: 10).message))
    #expect(ProxyError.tooLarge(limit: 10).message.contains("10"))
    #expect(ProxyError.noToken("login failing").status == 503)
    #expect(ProxyError.noToken("login failing").code == "no_token")
  }

  @Test func noTokenBecauseTheAPIRefusedIsServiceUnavailableSayingWhy() {
    let error = ProxyError.noToken(TokenFailure.ipNotAuthorized)
    #expect(error.status == 503)
    #expect(error.code == "no_token")
    #expect(error.message.contains("IP address not authorized"))
  }

  @Test func noTokenBecauseTheUpstreamIsUnreachableIsItsGatewayError() {
    let untrusted = ProxyError.noToken(TokenFailure.unreachable(UpstreamFailure.from(curlCode: 60)))
    #expect(untrusted.status == 502)
    #expect(untrusted.message == "upstream certificate not trusted")
    #expect(ProxyError.noToken(TokenFailure.unreachable(UpstreamFailure.from(curlCode: 28))).status == 504)
  }

  @Test func upstreamFailureKeepsItsStatusCodeAndMessage() {
    let failure = UpstreamFailure.from(curlCode: 7)
    #expect(ProxyError.upstream(failure) == ProxyError(status: 502, code: failure.code, message: failure.message))
  }
}

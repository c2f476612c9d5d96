import AuthProxy
import Foundation
import Testing
import TestSupport

/// RFC 9112 both ways (SPEC §4 "Framing follows RFC 9112 both ways"), over real sockets: a
/// recording upstream answers with raw bytes and keeps what it received, the app is a raw
/// connection, the bytes are compared exactly on both sides (the app's `Date` aside), and every
/// case ends with a second request on the same app connection, which a desynchronised
/// connection would get wrong.
@Suite(.serialized) struct FramingFidelityTests {
  // MARK: Responses: the proxy frames what the app gets

  /// §6.3: Transfer-Encoding beats Content-Length, and the length is not passed on (it used to
  /// reach the app with the chunked body's data: its next answer started with "12").
  @Test func aTransferEncodingBeatsAContentLengthWhichIsNotPassedOn() throws {
    let proxy = try RecordingProxy()
    defer { proxy.stop() }
    proxy.upstream.answer(
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nX-Page: 1\r\n\r\n7\r\nhello12\r\n0\r\n\r\n")
    let app = try proxy.connect()
    try app.send(get("/api/v1/both"))
    let response = try app.readWireResponse()
    #expect(headLines(response) == ["HTTP/1.1 200 OK", "X-Page: 1", "X-Request-ID: t-1", "Transfer-Encoding: chunked"])
    #expect(response.body == bytes("7\r\nhello12\r\n0\r\n\r\n"))
    try expectFollowUp(proxy, on: app)
  }

  /// The same with a length larger than the body: the app used to wait for 50 bytes.
  @Test func aLargerContentLengthBesideAnEmptyChunkedBodyIsNotWaitedFor() throws {
    let proxy = try RecordingProxy()
    defer { proxy.stop() }
    proxy.upstream.answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n0\r\n\r\n")
    let app = try proxy.connect()
    try app.send(get("/api/v1/empty"))
    let response = try app.readWireResponse()
    #expect(headLines(response) == ["HTTP/1.1 200 OK", "X-Request-ID: t-1", "Transfer-Encoding: chunked"])
    #expect(response.body == bytes("0\r\n\r\n"))
    try expectFollowUp(proxy, on: app)
  }

  /// A body read until the upstream closes (HTTP/1.0 without a length, or `Connection: close`
  /// without one) reaches an HTTP/1.1 app re-chunked and ended by the last chunk, whether or not
  /// the upstream said close_notify before closing.
  @Test(arguments: [
    ("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n", false),
    ("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n", true),
    ("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n", false),
    ("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n", true),
  ])
  func aCloseDelimitedBodyEndsCleanly(head: String, closeNotify: Bool) throws {
    let proxy = try RecordingProxy()
    defer { proxy.stop() }
    proxy.upstream.answer(head + "until the end", thenClose: true, withoutCloseNotify: !closeNotify)
    let app = try proxy.connect()
    try app.send(get("/api/v1/until-close"))
    let response = try app.readWireResponse()
    #expect(headLines(response) == ["HTTP/1.1 200 OK", "Content-Type: text/plain", "X-Request-ID: t-1", "Transfer-Encoding: chunked"])
    #expect(response.body == bytes("d\r\nuntil the end\r\n0\r\n\r\n"))
    try expectFollowUp(proxy, on: app)
  }

  /// An HTTP/1.0 app gets a close-delimited body as such: no length, the connection closes.
  @Test func aCloseDelimitedBodyReachesAnHTTP10AppCloseDelimited() throws {
    let proxy = try RecordingProxy()
    defer { proxy.stop() }
    proxy.upstream.answer("HTTP/1.0 200 OK\r\n\r\nuntil the end", thenClose: true, withoutCloseNotify: true)
    let app = try proxy.connect()
    try app.send("GET /api/v1/until-close HTTP/1.0\r\nX-Request-ID: t-1\r\n\r\n")
    let response = try app.readWireResponse()
    #expect(headLines(response) == ["HTTP/1.0 200 OK", "X-Request-ID: t-1", "Connection: close"])
    #expect(response.body == bytes("until the end"))
  }

  /// A list of equal lengths, or repeated equal fields, go to the app as one Content-Length.
  @Test(arguments: ["Content-Length: 5, 5", "Content-Length: 5\r\nContent-Length: 5", "Content-Length: 5,5\r\ncontent-length: 5"])
  func equalContentLengthsReachTheAppAsOne(fields: String) throws {
    let proxy = try RecordingProxy()
    defer { proxy.stop() }
    proxy.upstream.answer("HTTP/1.1 200 OK\r\n\(fields)\r\nX-Page: 2\r\n\r\nhello")
    let app = try proxy.connect()
    try app.send(get("/api/v1/lengths"))
    let response = try app.readWireResponse()
    #expect(headLines(response) == ["HTTP/1.1 200 OK", "X-Page: 2", "X-Request-ID: t-1", "Content-Length: 5"])
    #expect(response.body == bytes("hello"))
    try expectFollowUp(proxy, on: app)
  }

  /// A HEAD answer keeps the length a GET would get (one value), and no body follows.
  @Test func aHEADAnswerKeepsItsOneLength() throws {
    let proxy = try RecordingProxy()
    defer { proxy.stop() }
    proxy.upstream.answer("HTTP/1.1 200 OK\r\nContent-Length: 1234, 1234\r\n\r\n")
    let app = try proxy.connect()
    try app.send("HEAD /api/v1/head HTTP/1.1\r\nX-Request-ID: t-1\r\n\r\n")
    let response = try app.readWireResponse(forHEAD: true)
    #expect(headLines(response) == ["HTTP/1.1 200 OK", "X-Request-ID: t-1", "Content-Length: 1234"])
    try expectFollowUp(proxy, on: app)
  }

  /// An invalid chunk size right after the head, before anything reached the app: the app
  /// gets the proxy's 502 JSON error (SPEC §4), not an empty reply, and its connection goes on.
  @Test func anInvalidChunkSizeBeforeAnythingWasSentGives502JSON() throws {
    let proxy = try RecordingProxy()
    defer { proxy.stop() }
    proxy.upstream.answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
    let app = try proxy.connect()
    try app.send(get("/api/v1/bad-chunk"))
    let response = try app.readWireResponse()
    #expect(response.lines.first == "HTTP/1.1 502 Bad Gateway")
    #expect(values(response, "Content-Type") == ["application/json"])
    #expect(values(response, "X-Request-ID") == ["t-1"])
    #expect(values(response, "Content-Length") == [String(response.body.count)])
    let json = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
    let error = json?["error"] as? [String: Any]
    #expect(error?["code"] as? String == "upstream_protocol")
    #expect(error?["request_id"] as? String == "t-1")
    #expect((error?["message"] as? String)?.isEmpty == false)
    try expectFollowUp(proxy, on: app)
  }

  // MARK: Requests: faithful where the RFCs allow

  /// RFC 9110 §5.5: field values are bytes; obs-text goes upstream byte for byte.
  @Test func obsTextInAFieldValuePassesByteForByte() throws {
    let proxy = try RecordingProxy()
    defer { proxy.stop() }
    proxy.upstream.answer("HTTP/1.1 204 No Content\r\n\r\n")
    let app = try proxy.connect()
    let obs: [UInt8] = bytes("X-A: caf") + [0xE9] + bytes("\r\nX-B: ") + [0x80, 0xFF] + bytes(" end\r\n")
    try app.send(bytes("GET /api/v1/obs HTTP/1.1\r\nHost: x\r\n") + obs + bytes("X-Request-ID: t-1\r\n\r\n"))
    let response = try app.readWireResponse()
    #expect(headLines(response) == ["HTTP/1.1 204 No Content", "X-Request-ID: t-1"])
    #expect(proxy.upstream.requests.last == proxy.expectedRequest("GET /api/v1/obs", fields: obs))
    try expectFollowUp(proxy, on: app)
  }

  /// RFC 9112 §7.1.1: well-formed chunk extensions are accepted, and dropped with the rest of
  /// the chunked framing (the body goes upstream with its length).
  @Test func chunkExtensionsAreAcceptedAndDropped() throws {
    let proxy = try RecordingProxy()
    defer { proxy.stop() }
    proxy.upstream.answer("HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
    let app = try proxy.connect()
    try app.send(
      "POST /api/v1/ext HTTP/1.1\r\nHost: x\r\nX-Request-ID: t-1\r\nTransfer-Encoding: chunked\r\n\r\n"
        + "5;foo=bar\r\nhello\r\n6 ; a=\"q;r\"\r\n world\r\n0;end\r\n\r\n")
    let response = try app.readWireResponse()
    #expect(headLines(response) == ["HTTP/1.1 201 Created", "X-Request-ID: t-1", "Content-Length: 2"])
    #expect(response.body == bytes("ok"))
    #expect(
      proxy.upstream.requests.last == proxy.expectedRequest("POST /api/v1/ext", fields: [], body: bytes("hello world")))
    try expectFollowUp(proxy, on: app)
  }

  /// RFC 9110 §9.1: any token is a method; only CONNECT and TRACE stay refused (HostileInputTests).
  @Test(arguments: ["PROPFIND", "SEARCH", "QUERY", "PURGE", "LINK", "MKCOL"])
  func anyTokenMethodPasses(method: String) throws {
    let proxy = try RecordingProxy()
    defer { proxy.stop() }
    proxy.upstream.answer("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n<ok>")
    let app = try proxy.connect()
    try app.send("\(method) /api/v1/dav HTTP/1.1\r\nHost: x\r\nDepth: 1\r\nX-Request-ID: t-1\r\nContent-Length: 3\r\n\r\na=1")
    let response = try app.readWireResponse()
    #expect(headLines(response) == ["HTTP/1.1 200 OK", "X-Request-ID: t-1", "Content-Length: 4"])
    #expect(response.body == bytes("<ok>"))
    #expect(
      proxy.upstream.requests.last == proxy.expectedRequest("\(method) /api/v1/dav", fields: bytes("Depth: 1\r\n"), body: bytes("a=1")))
    try expectFollowUp(proxy, on: app)
  }

  /// RFC 9112 §2.2: empty lines before a request line are ignored, at the start of a
  /// connection and after a POST body (a client's stray CRLF), arriving with it or later.
  @Test func emptyLinesBeforeARequestLineAreIgnored() throws {
    let proxy = try RecordingProxy()
    defer { proxy.stop() }
    let app = try proxy.connect()
    proxy.upstream.answer("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
    try app.send("\r\n" + get("/api/v1/first"))
    #expect(try app.readWireResponse().body == bytes("a"))
    #expect(proxy.upstream.requests.last == proxy.expectedRequest("GET /api/v1/first", fields: []))

    proxy.upstream.answer("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
    try app.send("POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nX-Request-ID: t-1\r\nContent-Length: 2\r\n\r\nok\r\n")
    #expect(try app.readWireResponse().body == bytes("b"))
    #expect(proxy.upstream.requests.last == proxy.expectedRequest("POST /api/v1/orders", fields: [], body: bytes("ok")))
    try expectFollowUp(proxy, on: app)

    // The stray CRLF alone, after the answer; then the next request.
    proxy.upstream.answer("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc")
    try app.send("POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nX-Request-ID: t-1\r\nContent-Length: 2\r\n\r\nok")
    #expect(try app.readWireResponse().body == bytes("c"))
    try app.send("\r\n")
    try expectFollowUp(proxy, on: app)
    #expect(proxy.upstream.requests.count == 5)
  }
}

// MARK: - Support

/// A proxy (one worker, no retries) in front of a `RecordingUpstream`.
private final class RecordingProxy {
  let upstream: RecordingUpstream
  let runtime: ProxyRuntime
  let logs = LogCapture()
  var port: Int { runtime.proxyPort }

  init() throws {
    upstream = try RecordingUpstream()
    let directory = temporaryDirectory()
    let flags = [
      "upstream": upstream.baseURL, "ca-file": upstream.caPath, "listen": "127.0.0.1:0", "admin-listen": "127.0.0.1:0",
      "access-log": directory + "/access.log", "workers": "1", "retries": "0", "user-agent": "framing-test",
    ]
    let config = try ServeConfig.load(flags: flags, environment: [:]).get()
    runtime = try ProxyRuntime(
      config: config, credentials: Credentials(username: "recording", password: Secret("recording-password")), logger: logs.logger)
  }

  func connect() throws -> RawConnection { try RawConnection(port: port, timeoutSeconds: 20) }

  /// The request the upstream must receive for `line` (method and path) with the app's `fields`
  /// lines kept, X-Request-ID t-1, and `body` framed by its length.
  func expectedRequest(_ line: String, fields: [UInt8], body: [UInt8] = []) -> [UInt8] {
    let method = line.prefix { $0 != " " }
    var out = bytes("\(line) HTTP/1.1\r\nHost: localhost:\(upstream.port)\r\n") + fields
    out += bytes("Authorization: Bearer recording-access\r\nX-Request-ID: t-1\r\n")
    // The proxy's traceparent has a random span id: the one it sent, if it is well-formed.
    let sent = String(decoding: upstream.requests.last ?? [], as: UTF8.self)
    if let line = sent.split(separator: "\r\n").first(where: { $0.hasPrefix("traceparent: ") }),
      TraceContext.parse(Array(line.dropFirst("traceparent: ".count).utf8)) != nil
    {
      out += bytes("\(line)\r\n")
    }
    out += bytes("User-Agent: framing-test\r\n")
    if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method) { out += bytes("Content-Length: \(body.count)\r\n") }
    return out + bytes("\r\n") + body
  }

  func stop() {
    runtime.shutdown()
    runtime.wait()
    upstream.stop()
  }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

private func get(_ target: String) -> String { "GET \(target) HTTP/1.1\r\nHost: x\r\nX-Request-ID: t-1\r\n\r\n" }

/// The head's lines but `Date` (the one the proxy adds changes every second).
private func headLines(_ response: (lines: [String], body: [UInt8])) -> [String] {
  response.lines.filter { !$0.lowercased().hasPrefix("date:") }
}

private func values(_ response: (lines: [String], body: [UInt8]), _ name: String) -> [String] {
  response.lines.dropFirst().compactMap { line in
    guard line.lowercased().hasPrefix(name.lowercased() + ":") else { return nil }
    return line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces)
  }
}

/// A second request on the same app connection: its answer arrives whole, exactly, and the
/// upstream saw exactly that request.
private func expectFollowUp(_ proxy: RecordingProxy, on app: RawConnection, sourceLocation: SourceLocation = #_sourceLocation) throws {
  proxy.upstream.answer("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nfollow-up")
  try app.send(get("/api/v1/follow-up"))
  let response = try app.readWireResponse()
  #expect(
    headLines(response) == ["HTTP/1.1 200 OK", "Content-Type: text/plain", "X-Request-ID: t-1", "Content-Length: 9"],
    sourceLocation: sourceLocation)
  #expect(response.body == bytes("follow-up"), sourceLocation: sourceLocation)
  #expect(proxy.upstream.requests.last == proxy.expectedRequest("GET /api/v1/follow-up", fields: []), sourceLocation: sourceLocation)
}

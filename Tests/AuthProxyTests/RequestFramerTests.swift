import Testing

@testable import AuthProxy

// MARK: - Helpers

/// Deterministic generator (SplitMix64) so every run tests the same splits and mutations.
private struct SplitMix64: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

private struct Verdict: Equatable, CustomStringConvertible {
  var rejection: FramingRejection?
  var heads: Int
  var description: String {
    if let r = rejection { return "rejected \(r.status) \(r.code) \"\(r.message)\" id=\(r.requestID ?? "nil") after \(heads) heads" }
    return "accepted \(heads) heads"
  }
}

private enum Split {
  case whole
  case bytes
  case random(seed: UInt64)
}

private let defaultLimits = RequestLimits(maxBody: 1 << 20)

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

private func pieces(_ input: [UInt8], _ split: Split) -> [ArraySlice<UInt8>] {
  switch split {
  case .whole:
    return [input[...]]
  case .bytes:
    return input.indices.map { input[$0..<$0 + 1] }
  case .random(let seed):
    var rng = SplitMix64(seed: seed)
    var out: [ArraySlice<UInt8>] = []
    var i = 0
    while i < input.count {
      // Mostly small pieces, sometimes large ones, sometimes empty ones.
      let kind = rng.next() % 8
      let size: Int
      switch kind {
      case 0: size = 0
      case 1, 2, 3: size = Int(rng.next() % 4) + 1
      case 4, 5: size = Int(rng.next() % 32) + 1
      default: size = Int(rng.next() % 512) + 1
      }
      let end = min(input.count, i + size)
      out.append(input[i..<end])
      i = end
    }
    return out
  }
}

/// Feeds the input in pieces; also checks that once rejected, every later call returns the same rejection.
private func frame(_ input: [UInt8], limits: RequestLimits = defaultLimits, split: Split = .whole) -> Verdict {
  var framer = RequestFramer(limits: limits)
  var first: FramingRejection?
  var headsAtRejection = 0
  for piece in pieces(input, split) {
    let result = piece.withUnsafeBytes { framer.consume($0) }
    if let first {
      #expect(result == first, "rejection is not sticky")
      #expect(framer.headsAccepted == headsAtRejection, "heads counted after a rejection")
    } else if let result {
      first = result
      headsAtRejection = framer.headsAccepted
    }
  }
  return Verdict(rejection: first, heads: framer.headsAccepted)
}

private func frame(_ input: String, limits: RequestLimits = defaultLimits, split: Split = .whole) -> Verdict {
  frame(bytes(input), limits: limits, split: split)
}

/// The verdict on a request that must be refused with 400 bad_request.
private func expectBadRequest(
  _ input: String, limits: RequestLimits = defaultLimits, messageContains: String? = nil,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  expectRejected(
    bytes(input), limits: limits, status: 400, code: "bad_request", messageContains: messageContains,
    sourceLocation: sourceLocation)
}

private func expectRejected(
  _ input: [UInt8], limits: RequestLimits = defaultLimits, status: Int, code: String, messageContains: String? = nil,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  let verdict = frame(input, limits: limits)
  guard let r = verdict.rejection else {
    Issue.record("accepted: \(String(decoding: input, as: UTF8.self).debugDescription)", sourceLocation: sourceLocation)
    return
  }
  #expect(r.status == status, "\(verdict)", sourceLocation: sourceLocation)
  #expect(r.code == code, "\(verdict)", sourceLocation: sourceLocation)
  if let messageContains {
    #expect(r.message.contains(messageContains), "\(verdict)", sourceLocation: sourceLocation)
  }
  // The verdict must not depend on how the bytes arrive.
  #expect(frame(input, limits: limits, split: .bytes) == verdict, sourceLocation: sourceLocation)
}

private func expectAccepted(
  _ input: String, heads: Int = 1, limits: RequestLimits = defaultLimits,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  expectAccepted(bytes(input), heads: heads, limits: limits, sourceLocation: sourceLocation)
}

private func expectAccepted(
  _ input: [UInt8], heads: Int = 1, limits: RequestLimits = defaultLimits,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  let verdict = frame(input, limits: limits)
  #expect(verdict == Verdict(rejection: nil, heads: heads), sourceLocation: sourceLocation)
  #expect(frame(input, limits: limits, split: .bytes) == verdict, sourceLocation: sourceLocation)
}

private let simpleGET = "GET /v1/items?limit=10&q=a%20b HTTP/1.1\r\nHost: localhost:8080\r\nAccept: */*\r\n\r\n"
private let postWithBody =
  "POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"sku\":\"a-1\"}"
private let chunkedWithTrailers =
  "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
  + "5\r\nhello\r\n"
  + "06\r\n world\r\n"
  + "A\r\n0123456789\r\n"
  + "0\r\nX-Checksum: abc123\r\nX-Other:\tok \r\n\r\n"

/// Valid connections: (bytes, heads). Used by the split and mutation properties.
private let validSamples: [(String, Int)] = [
  (simpleGET, 1),
  (postWithBody, 1),
  (chunkedWithTrailers, 1),
  (simpleGET + postWithBody + chunkedWithTrailers + simpleGET, 4),
  ("GET / HTTP/1.1\nHost: x\nX-Request-ID: abc-123\n\n" + "POST /p HTTP/1.1\nContent-Length: 2\n\nok", 2),
  ("HEAD /h HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 1),
  ("GET / HTTP/1.0\r\n\r\n", 1),
  (simpleGET + simpleGET + simpleGET, 3),
  ("PUT /a HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc", 1),
  ("PATCH /a HTTP/1.1\r\nContent-Length:4 \r\nContent-Length: 4\t\r\n\r\nabcd", 1),
  ("DELETE /a/b HTTP/1.1\r\nTransfer-Encoding: ChUnKeD \r\n\r\n3\r\nabc\r\n0\r\n\r\n", 1),
  ("OPTIONS /x HTTP/1.1\r\nX-Binary: caf\u{E9} \r\n\r\n", 1),
  ("GET /with-body HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET /next HTTP/1.1\r\n\r\n", 2),
  ("\r\n" + postWithBody + "\r\n" + simpleGET + "\n\n", 2),
  ("PROPFIND /dav HTTP/1.1\r\nDepth: 1\r\nContent-Length: 2\r\n\r\n<>SEARCH /s HTTP/1.1\r\n\r\n", 2),
  ("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;foo=bar\r\nhello\r\n3 ; q=\"a;b\"\r\nabc\r\n0;end\r\n\r\n", 1),
]

// MARK: - Valid requests

@Suite struct RequestFramerTests {
  @Test func acceptsSimpleGET() {
    expectAccepted(simpleGET)
  }

  @Test func acceptsPOSTWithContentLengthBody() {
    expectAccepted(postWithBody)
    // The body is skipped: the framer waits for exactly 13 body bytes, then a new head.
    var framer = RequestFramer(limits: defaultLimits)
    let head = bytes(postWithBody)
    #expect(head.withUnsafeBytes { framer.consume($0) } == nil)
    #expect(framer.headsAccepted == 1)
    // Bytes that would be a bad head are not looked at inside a body, but are after it.
    let inner = bytes("POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\n\u{1}\u{2}\u{3}")
    #expect(inner.withUnsafeBytes { framer.consume($0) } == nil)
    let bad = bytes("BR(EW / HTTP/1.1\r\n\r\n")
    #expect(bad.withUnsafeBytes { framer.consume($0) }?.status == 400)
    #expect(framer.headsAccepted == 2)
  }

  @Test func acceptsChunkedPOSTWithTrailers() {
    expectAccepted(chunkedWithTrailers)
  }

  @Test func saysWhenTheCurrentRequestLineWasAccepted() {
    var framer = RequestFramer(limits: defaultLimits)
    func feed(_ text: String) -> FramingRejection? { bytes(text).withUnsafeBytes { framer.consume($0) } }
    #expect(feed("GET /a HTTP/1.1") == nil)
    #expect(!framer.requestLineAccepted, "the line is not whole yet")
    #expect(feed("\r\nHost: x\r\n") == nil)
    #expect(framer.requestLineAccepted)
    #expect(feed("\r\n") == nil)
    #expect(!framer.requestLineAccepted, "the request is complete: the next one has no line yet")
    #expect(feed("POST /b HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")?.status == 400)
    #expect(framer.requestLineAccepted, "refused after its line")
    var refusedLine = RequestFramer(limits: defaultLimits)
    #expect(bytes("GET /a#b HTTP/1.1\r\n\r\n").withUnsafeBytes { refusedLine.consume($0) }?.status == 400)
    #expect(!refusedLine.requestLineAccepted)
  }

  /// RFC 9110 §9.1: a method is any token (and case matters: `get` is not GET).
  @Test func acceptsAnyTokenMethod() {
    let methods = [
      "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "SEARCH", "QUERY", "PURGE", "LINK", "UNLINK",
      "MKCALENDAR", "get", "Post", "X-CUSTOM_1!", "VERSION-CONTROL", "CONNECTX", "TRACES", "CONNEC",
    ]
    for method in methods {
      expectAccepted("\(method) /m HTTP/1.1\r\nHost: x\r\n\r\n")
    }
    // A long one is bounded by the request line limit only.
    let long = String(repeating: "M", count: 100)
    expectAccepted("\(long) /m HTTP/1.1\r\n\r\n")
    #expect(frame("\(long) /m HTTP/1.1\r\n\r\n", limits: RequestLimits(maxBody: 0, maxRequestLine: 50)).rejection?.status == 414)
  }

  @Test func aBodyOnAnotherMethodIsFramedAsAnyOther() {
    expectAccepted("PROPFIND /dav HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello" + simpleGET, heads: 2)
    expectAccepted("QUERY /q HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + simpleGET, heads: 2)
    // Only HEAD, exactly, reads no body.
    expectBadRequest("HEAD / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", messageContains: "HEAD")
    expectAccepted("head / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx")
  }

  @Test func acceptsBareLFLineEndings() {
    expectAccepted("POST /lf HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n2\nab\n0\nT: v\n\n")
  }

  @Test func acceptsHTTP10WithContentLength() {
    expectAccepted("POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi")
  }

  @Test func acceptsObsTextTabsAndPunctuationInValues() {
    var input = bytes("GET / HTTP/1.1\r\nX-A: \t a\tb \u{7E}!\"#(),/:;<=>?@[\\]{} \t\r\nX-B: ")
    input += [0x80, 0xFF, 0xC3, 0xA9]
    input += bytes("\r\nX-Empty:\r\nX-Spaces:   \r\n\r\n")
    expectAccepted(input)
  }

  @Test func acceptsEveryTokenCharacterInFieldNames() {
    expectAccepted("GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09AZaz: v\r\n\r\n")
  }

  @Test func acceptsVisibleCharactersInTarget() {
    expectAccepted("GET /a/b;c?d=e&f=%41+g|{}[]\"<>\\^`~!$'()*,:@ HTTP/1.1\r\n\r\n")
  }

  @Test func acceptsLargeBodyInBulk() {
    let body = [UInt8](repeating: 0x00, count: 300_000)
    let input = bytes("PUT /big HTTP/1.1\r\nContent-Length: 300000\r\n\r\n") + body + bytes(simpleGET)
    let verdict = frame(input, split: .random(seed: 7))
    #expect(verdict == Verdict(rejection: nil, heads: 2))
  }

  @Test func requestWithoutFramingHeadersHasNoBody() {
    // What follows a head without Content-Length or Transfer-Encoding is the next head, not a body.
    expectAccepted("POST /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n\r\n", heads: 2)
    expectBadRequest("POST /a HTTP/1.1\r\nHost: x\r\n\r\nhello\r\n", messageContains: "malformed request line")
  }

  // MARK: Pipelining

  @Test func countsPipelinedRequests() {
    var framer = RequestFramer(limits: defaultLimits)
    for n in 1...5 {
      let r = bytes(postWithBody + chunkedWithTrailers).withUnsafeBytes { framer.consume($0) }
      #expect(r == nil)
      #expect(framer.headsAccepted == 2 * n)
    }
  }

  @Test func countsOnlyCompleteHeads() {
    var framer = RequestFramer(limits: defaultLimits)
    let input = bytes(simpleGET)
    #expect(input.dropLast().withUnsafeBytes { framer.consume($0) } == nil)
    #expect(framer.headsAccepted == 0)
    #expect(input.suffix(1).withUnsafeBytes { framer.consume($0) } == nil)
    #expect(framer.headsAccepted == 1)
  }

  /// RFC 9112 §2.2: a server should ignore at least one empty line before a request line.
  @Test func ignoresAFewEmptyLinesBeforeARequestLine() {
    for prefix in ["\r\n", "\n", "\r\n\n", "\n\r\n", String(repeating: "\r\n", count: RequestFramer.maxEmptyLines)] {
      expectAccepted(prefix + simpleGET)
    }
    // Between pipelined requests, also after a body (Content-Length or chunked): a client's
    // stray CRLF after a POST body.
    for first in [simpleGET, postWithBody, chunkedWithTrailers] {
      for separator in ["\r\n", "\n", "\r\n\r\n"] {
        expectAccepted(first + separator + simpleGET, heads: 2)
      }
    }
    // Trailing after the last request: nothing to refuse.
    expectAccepted(simpleGET + "\r\n")
    // Not endlessly: the count is per request line.
    let many = String(repeating: "\r\n", count: RequestFramer.maxEmptyLines + 1)
    expectBadRequest(many + simpleGET, messageContains: "empty lines before the request line")
    expectAccepted(String(repeating: "\r\n", count: RequestFramer.maxEmptyLines) + simpleGET + "\n" + simpleGET, heads: 2)
    // Never an empty line with a bare CR, nor whitespace lines.
    expectAccepted(simpleGET + "\r")
    expectBadRequest(simpleGET + "\rGET", messageContains: "CR not followed by LF")
    expectBadRequest("\r\r\n" + simpleGET, messageContains: "CR not followed by LF")
    expectBadRequest(" \r\n" + simpleGET)
    expectBadRequest("\t\r\n" + simpleGET)
  }

  @Test func emptyLinesDoNotStartAHead() {
    var framer = RequestFramer(limits: defaultLimits)
    #expect(bytes("\r\n\r").withUnsafeBytes { framer.consume($0) } == nil)
    #expect(!framer.isReadingHead && !framer.isReadingBody && framer.headsAccepted == 0)
    #expect(bytes("\nG").withUnsafeBytes { framer.consume($0) } == nil)
    #expect(framer.isReadingHead)
  }

  @Test func rejectsTheFirstBadRequestOfAPipeline() {
    let verdict = frame(simpleGET + postWithBody + "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n" + simpleGET)
    #expect(verdict.heads == 2)
    #expect(verdict.rejection?.status == 400)
  }

  // MARK: - Request line

  @Test func rejectsConnectAndTraceInAnyCase() {
    for method in ["CONNECT", "TRACE", "connect", "Trace", "tRaCe", "CONNECt"] {
      expectBadRequest("\(method) / HTTP/1.1\r\n\r\n", messageContains: "method is not supported")
    }
    for method in ["GE(T", "GE\u{E9}T", "G\tET", "GET\u{0}"] {
      expectBadRequest("\(method) / HTTP/1.1\r\n\r\n", messageContains: "malformed request line")
    }
  }

  @Test func rejectsConnectAuthorityForm() {
    expectBadRequest("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", messageContains: "method")
  }

  @Test func rejectsMalformedRequestLines() {
    for line in [
      "GET  / HTTP/1.1", " GET / HTTP/1.1", "GET\t/ HTTP/1.1", "GET /", "GET / HTTP/1.1 ", "GET /  HTTP/1.1",
      "\u{16}\u{3}\u{1}", "GET", "GET / HTTP/1.1 extra", "/ HTTP/1.1",
    ] {
      let verdict = frame(line + "\r\n\r\n")
      #expect(verdict.rejection?.status == 400, "\(line.debugDescription): \(verdict)")
      #expect(verdict.heads == 0)
    }
  }

  @Test func rejectsUnsupportedVersions() {
    for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "http/1.1", "HTTP/1.10", "HTTP/11", "HTTPS/1.1", "HTTP/1.", "HTTP/1.1\u{0}"] {
      expectBadRequest("GET / \(version)\r\n\r\n", messageContains: "HTTP version")
    }
  }

  @Test func rejectsNonOriginFormTargets() {
    for target in ["http://evil.example/x", "https://api/x", "example.com:443", "*", "//evil.example/x", "?q", "a/b"] {
      expectBadRequest("OPTIONS \(target) HTTP/1.1\r\n\r\n", messageContains: "only origin-form targets are proxied")
    }
  }

  @Test func rejectsFragmentInTarget() {
    expectBadRequest("GET /a#frag HTTP/1.1\r\n\r\n", messageContains: "fragment")
  }

  @Test func rejectsControlAndNonASCIIBytesInTarget() {
    for byte: UInt8 in [0x00, 0x01, 0x09, 0x0B, 0x1F, 0x7F, 0x80, 0xC3, 0xFF] {
      let input = bytes("GET /a") + [byte] + bytes("b HTTP/1.1\r\n\r\n")
      expectRejected(input, status: 400, code: "bad_request", messageContains: "request target")
    }
  }

  @Test func rejectsBareCR() {
    expectBadRequest("GET / HTTP/1.1\rHost: x\r\n\r\n", messageContains: "CR not followed by LF")
    expectBadRequest("GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n", messageContains: "CR not followed by LF")
    expectBadRequest("GET / HTTP/1.1\r\nHost: x\r\n\r\r\n", messageContains: "CR not followed by LF")
    expectBadRequest(simpleGET + "\r\r\n" + simpleGET, messageContains: "CR not followed by LF")
    expectBadRequest("GET /a\rb HTTP/1.1\r\n\r\n")
  }

  @Test func rejectsLongRequestLineWith414() {
    let limits = RequestLimits(maxBody: 100, maxRequestLine: 40)
    let fixed = "GET / HTTP/1.1".utf8.count
    let exact = "GET /" + String(repeating: "a", count: 40 - fixed) + " HTTP/1.1\r\n\r\n"
    expectAccepted(exact, limits: limits)
    let over = "GET /" + String(repeating: "a", count: 41 - fixed) + " HTTP/1.1\r\n\r\n"
    expectRejected(bytes(over), limits: limits, status: 414, code: "uri_too_long", messageContains: "request line")
  }

  @Test func detects414WhileStreamingWithoutBuffering() {
    // No line end ever arrives: the framer must still refuse once the limit is passed.
    var framer = RequestFramer(limits: defaultLimits)
    #expect(bytes("GET /").withUnsafeBytes { framer.consume($0) } == nil)
    let chunk = [UInt8](repeating: 0x61, count: 1000)
    var result: FramingRejection?
    var fed = 5
    while result == nil && fed < 100_000 {
      result = chunk.withUnsafeBytes { framer.consume($0) }
      fed += chunk.count
    }
    #expect(result?.status == 414)
    #expect(result?.code == "uri_too_long")
    #expect(fed <= 8192 + 1000)
  }

  // MARK: - Header section

  @Test func rejectsWhitespaceBeforeColon() {
    expectBadRequest("GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello", messageContains: "between header field name and colon")
    expectBadRequest("GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", messageContains: "colon")
  }

  @Test func rejectsEmptyHeaderName() {
    expectBadRequest("GET / HTTP/1.1\r\n: value\r\n\r\n", messageContains: "empty header field name")
  }

  @Test func rejectsControlAndSeparatorBytesInHeaderName() {
    for byte: UInt8 in [0x00, 0x01, 0x7F, 0x80, 0x22, 0x28, 0x2C, 0x2F, 0x3B, 0x3D, 0x40, 0x5B, 0x7B] {
      let input = bytes("GET / HTTP/1.1\r\nX") + [byte] + bytes("Y: v\r\n\r\n")
      expectRejected(input, status: 400, code: "bad_request", messageContains: "field name")
    }
    let leading = bytes("GET / HTTP/1.1\r\n") + [0x01] + bytes("X: v\r\n\r\n")
    expectRejected(leading, status: 400, code: "bad_request", messageContains: "field name")
  }

  @Test func rejectsHeaderLineWithoutColon() {
    expectBadRequest("GET / HTTP/1.1\r\nHost x\r\n\r\n")
    expectBadRequest("GET / HTTP/1.1\r\nHost\r\n\r\n", messageContains: "without colon")
  }

  @Test func rejectsObsoleteLineFolding() {
    expectBadRequest("GET / HTTP/1.1\r\nX-A: a\r\n  folded\r\n\r\n", messageContains: "line folding")
    expectBadRequest("GET / HTTP/1.1\r\nX-A: a\r\n\tfolded\r\n\r\n", messageContains: "line folding")
    expectBadRequest("GET / HTTP/1.1\r\n Host: x\r\n\r\n", messageContains: "line folding")
  }

  @Test func rejectsNULAndControlBytesInHeaderValue() {
    var controls: [UInt8] = Array(0x00...0x08) + Array(0x0B...0x0C) + Array(0x0E...0x1F) + [0x7F]
    controls.append(0x0D)  // bare CR
    for byte in controls {
      for name in ["X-Anything", "Content-Length", "Transfer-Encoding", "X-Request-ID"] {
        let input = bytes("POST / HTTP/1.1\r\n\(name): ab") + [byte] + bytes("cd\r\n\r\n")
        expectRejected(input, status: 400, code: "bad_request")
      }
    }
    // A NUL must not cut the value short, as C parsers do.
    let nul = bytes("POST / HTTP/1.1\r\nContent-Length: 0") + [0x00] + bytes("5\r\n\r\nhello")
    expectRejected(nul, status: 400, code: "bad_request", messageContains: "field value")
  }

  @Test func rejectsOversizedHeadWith431() {
    let head = "GET / HTTP/1.1\r\nX-A: 0123456789\r\n\r\n"
    let size = head.utf8.count
    expectAccepted(head, limits: RequestLimits(maxBody: 0, maxHeaderBytes: size))
    expectRejected(
      bytes(head), limits: RequestLimits(maxBody: 0, maxHeaderBytes: size - 1), status: 431, code: "headers_too_large")
    // Oversized in the request line, a name or a value.
    for cut in [5, 17, 22] {
      expectRejected(
        bytes(head), limits: RequestLimits(maxBody: 0, maxHeaderBytes: cut), status: 431, code: "headers_too_large")
    }
  }

  @Test func detects431WhileStreamingAnEndlessHeader() {
    var framer = RequestFramer(limits: defaultLimits)
    #expect(bytes("GET / HTTP/1.1\r\nX-Long: ").withUnsafeBytes { framer.consume($0) } == nil)
    let chunk = [UInt8](repeating: 0x61, count: 4096)
    var result: FramingRejection?
    var rounds = 0
    while result == nil && rounds < 100 {
      result = chunk.withUnsafeBytes { framer.consume($0) }
      rounds += 1
    }
    #expect(result?.status == 431)
    #expect(result?.code == "headers_too_large")
    #expect(rounds == 16)  // 65536 bytes of head
  }

  @Test func rejectsTooManyHeadersWith431() {
    let limits = RequestLimits(maxBody: 0, maxHeaderCount: 3)
    expectAccepted("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits: limits)
    expectRejected(
      bytes("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"), limits: limits, status: 431,
      code: "headers_too_large", messageContains: "header fields")
  }

  @Test func neverEchoesHeaderValuesInMessages() {
    let secret = "Sup3rSecretValue"
    let cases = [
      "GET / HTTP/1.1\r\nContent-Length: \(secret)\r\n\r\n",
      "GET / HTTP/1.1\r\nTransfer-Encoding: \(secret)\r\n\r\n",
      "GET / HTTP/1.1\r\nAuthorization: Bearer \(secret)\u{1}\r\n\r\n",
      "GET /\(secret)# HTTP/1.1\r\n\r\n",
      "\(secret)( / HTTP/1.1\r\n\r\n",
    ]
    for input in cases {
      let verdict = frame(input)
      #expect(verdict.rejection != nil)
      #expect(!(verdict.rejection?.message.contains(secret) ?? true))
      #expect(!(verdict.rejection?.message.contains("Sup3r") ?? true))
    }
  }

  // MARK: - Content-Length

  @Test func rejectsInvalidContentLength() {
    for value in ["+5", "-5", "5a", "0x5", "5 5", "5.0", "", " ", "1,,1", ",1", "1,", "five", "5;", "\u{1}"] {
      let input = "POST / HTTP/1.1\r\nContent-Length: \(value)\r\n\r\nhello"
      let verdict = frame(input)
      #expect(verdict.rejection?.status == 400, "\(value.debugDescription): \(verdict)")
      #expect(verdict.heads == 0)
    }
    expectBadRequest("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello", messageContains: "Content-Length")
  }

  @Test func rejectsConflictingContentLengths() {
    expectBadRequest(
      "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", messageContains: "conflicting Content-Length")
    expectBadRequest("POST / HTTP/1.1\r\ncontent-length: 0\r\nCONTENT-LENGTH: 1\r\n\r\nx", messageContains: "conflicting")
  }

  @Test func acceptsIdenticalContentLengths() {
    expectAccepted("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello")
    expectAccepted("POST / HTTP/1.1\r\nContent-Length: 005\r\nContent-Length: 5\r\n\r\nhello")
  }

  @Test func rejectsContentLengthLists() {
    // A list, even of equal values, is a smuggling probe's shape.
    for value in ["5, 5", "5,5", "5 ,5", "5,5 ,\t5", "5, 6", "5,", ",5", "1,,1"] {
      expectBadRequest(
        "POST / HTTP/1.1\r\nContent-Length: \(value)\r\n\r\nhello", messageContains: "Content-Length with a list")
    }
    // Also on a later Content-Length line that would otherwise agree.
    expectBadRequest(
      "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\nhello", messageContains: "list")
  }

  @Test func rejectsContentLengthOverflow() {
    expectBadRequest(
      "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", limits: RequestLimits(maxBody: .max),
      messageContains: "out of range")
    expectBadRequest("POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n", messageContains: "out of range")
  }

  @Test func rejectsContentLengthAboveMaxBodyWith413BeforeTheBody() {
    let limits = RequestLimits(maxBody: 10)
    expectAccepted("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", limits: limits)
    // Only the head is fed: the decision does not wait for the body.
    var framer = RequestFramer(limits: limits)
    let r = bytes("POST / HTTP/1.1\r\nX-Request-ID: big-1\r\nContent-Length: 11\r\n\r\n").withUnsafeBytes {
      framer.consume($0)
    }
    #expect(r == FramingRejection(status: 413, code: "body_too_large", message: "request body larger than 10 bytes", requestID: "big-1"))
    #expect(framer.headsAccepted == 0)
  }

  // MARK: - Transfer-Encoding

  @Test func rejectsUnsupportedTransferEncodings() {
    for value in [
      "gzip", "gzip, chunked", "chunked, chunked", "chunked,", "identity", "", "chunk", "chunkedx", "chunked x", "ch unked", "\"chunked\"",
    ] {
      expectBadRequest(
        "POST / HTTP/1.1\r\nTransfer-Encoding: \(value)\r\n\r\n0\r\n\r\n", messageContains: "Transfer-Encoding")
    }
  }

  @Test func acceptsChunkedCaseInsensitivelyWithOWS() {
    expectAccepted("POST / HTTP/1.1\r\ntransfer-encoding:CHUNKED\t \r\n\r\n0\r\n\r\n")
    expectAccepted("POST / HTTP/1.1\r\nTransfer-Encoding:   Chunked\r\n\r\n0\r\n\r\n")
  }

  @Test func rejectsTabBeforeTransferEncodingValue() {
    // A server that strips only spaces before a value would not see "chunked" and would parse the body as a request.
    expectBadRequest("POST / HTTP/1.1\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n", messageContains: "tab")
    expectBadRequest("POST / HTTP/1.1\r\nTransfer-Encoding: \tchunked\r\n\r\n0\r\n\r\n", messageContains: "tab")
  }

  @Test func rejectsDuplicateTransferEncodingHeaders() {
    expectBadRequest(
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      messageContains: "more than one Transfer-Encoding")
  }

  @Test func rejectsTransferEncodingOnHTTP10() {
    expectBadRequest("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", messageContains: "HTTP/1.0")
  }

  @Test func rejectsBothContentLengthAndTransferEncoding() {
    expectBadRequest(
      "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      messageContains: "both Content-Length and Transfer-Encoding")
    expectBadRequest(
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n",
      messageContains: "both Content-Length and Transfer-Encoding")
  }

  @Test func rejectsBodyOnHEAD() {
    // A server reads no body for HEAD, so a body would be parsed as the next request.
    expectBadRequest("HEAD / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", messageContains: "HEAD")
    expectBadRequest("HEAD / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", messageContains: "HEAD")
    expectAccepted("HEAD / HTTP/1.1\r\nContent-Length: 0\r\n\r\n" + simpleGET, heads: 2)
  }

  // MARK: - Chunked bodies

  @Test func rejectsInvalidChunkSizes() {
    for line in ["", "g", "-1", "+1", "0x5", " 5", "5 ", "5\t", "5,", "5 x", ";x", "\u{0}"] {
      let input = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\(line)\r\nhello\r\n0\r\n\r\n"
      let verdict = frame(input)
      #expect(verdict.rejection?.status == 400, "\(line.debugDescription): \(verdict)")
      #expect(verdict.heads == 1)
    }
  }

  @Test func rejectsMoreThan16HexDigits() {
    let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    let limits = RequestLimits(maxBody: .max)
    expectAccepted(head + "0000000000000000\r\n\r\n", limits: limits)
    expectBadRequest(head + "00000000000000000\r\n\r\n", limits: limits, messageContains: "chunk size out of range")
  }

  @Test func rejectsChunkSizeOverflow() {
    let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    expectBadRequest(head + "8000000000000000\r\n", limits: RequestLimits(maxBody: .max), messageContains: "out of range")
    expectBadRequest(head + "FFFFFFFFFFFFFFFF\r\n", limits: RequestLimits(maxBody: .max), messageContains: "out of range")
  }

  @Test func rejectsChunkSumAboveMaxBodyWith413AsSoonAsKnown() {
    let limits = RequestLimits(maxBody: 10)
    let head = "POST / HTTP/1.1\r\nX-Request-ID: chunky\r\nTransfer-Encoding: chunked\r\n\r\n"
    expectAccepted(head + "6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n", limits: limits)
    // The second size line is not even complete: the sum is already known to exceed the limit.
    let verdict = frame(head + "6\r\nabcdef\r\n5", limits: limits)
    #expect(
      verdict.rejection
        == FramingRejection(status: 413, code: "body_too_large", message: "request body larger than 10 bytes", requestID: "chunky"))
    #expect(verdict.heads == 1)
    #expect(frame(head + "b;ext=1\r\n", limits: limits).rejection?.status == 413)
  }

  /// RFC 9112 §7.1.1: extensions are accepted when well-formed, and dropped (the body is re-framed).
  @Test func acceptsWellFormedChunkExtensions() {
    let head = "POST / HTTP/1.1\r\nX-Request-ID: ext-1\r\nTransfer-Encoding: chunked\r\n\r\n"
    let extensions = [
      ";a", ";a=b", ";foo=bar", ";a=\"\"", ";a=\"x y\\\"z\"", ";a=\"\u{E9}\"", ";a;b;c=d", " ;a", "\t; a = b ;c", ";a ", ";a=b\t",
      ";n=\"q\\\u{E9}\"",
    ]
    for ext in extensions {
      let input = head + "1\(ext)\r\na\r\n2\(ext)\r\nab\r\n0\(ext)\r\n\r\n" + simpleGET
      expectAccepted(input, heads: 2)
      for seed in 1...3 { #expect(frame(bytes(input), split: .random(seed: UInt64(seed))) == Verdict(rejection: nil, heads: 2)) }
    }
  }

  @Test func rejectsMalformedChunkExtensions() {
    let head = "POST / HTTP/1.1\r\nX-Request-ID: ext-1\r\nTransfer-Encoding: chunked\r\n\r\n"
    let extensions = [
      ";", "; ", ";=v", ";n=", ";n=\"unterminated", ";n=\"a\u{1}\"", ";n=v w", ";\u{0}", ";a=b=c", ";a,b", ";\u{E9}", ";n=\"a\"b",
    ]
    for ext in extensions {
      let rejection = FramingRejection(status: 400, code: "bad_request", message: "invalid chunk extension", requestID: "ext-1")
      let first = frame(head + "1\(ext)\r\na\r\n0\r\n\r\n")
      #expect(first == Verdict(rejection: rejection, heads: 1), "\(ext.debugDescription)")
      expectBadRequest(head + "1\(ext)\r\na\r\n0\r\n\r\n", messageContains: "invalid chunk extension")
      // On a later chunk and on the last chunk too.
      expectBadRequest(head + "1\r\na\r\n2\(ext)\r\nab\r\n0\r\n\r\n", messageContains: "chunk extension")
      expectBadRequest(head + "1\r\na\r\n0\(ext)\r\n\r\n", messageContains: "chunk extension")
    }
    // Whitespace after the size is only for a `;` to follow.
    for ext in [" ", "\t", " x", " =a"] {
      expectBadRequest(head + "1\(ext)\r\na\r\n0\r\n\r\n", messageContains: "invalid chunk size")
    }
    // A bare CR inside an extension is a bare CR, a bare LF ends the line.
    expectBadRequest(head + "1;a\rb\r\na\r\n0\r\n\r\n")
    // A chunk-size line is bounded like a head.
    let limits = RequestLimits(maxBody: 100, maxHeaderBytes: 80)
    let long = ";n=" + String(repeating: "v", count: 100)
    #expect(frame(head + "1\(long)\r\na\r\n0\r\n\r\n", limits: limits).rejection?.message.contains("chunk size line") == true)
  }

  @Test func rejectsMissingCRLFAfterChunkData() {
    let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    expectBadRequest(head + "5\r\nhello!\r\n0\r\n\r\n", messageContains: "chunk data not followed by CRLF")
    expectBadRequest(head + "5\r\nhello\r0\r\n\r\n", messageContains: "CR not followed by LF")
    // Extra empty lines between chunks (which some parsers skip) are not chunk sizes.
    expectBadRequest(head + "5\r\nhello\r\n\r\n0\r\n\r\n", messageContains: "chunk size")
  }

  @Test func rejectsInvalidTrailers() {
    let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    expectBadRequest(head + "Bad Name: x\r\n\r\n", messageContains: "whitespace")
    expectBadRequest(head + ": x\r\n\r\n", messageContains: "empty header field name")
    expectBadRequest(head + "X: a\u{0}b\r\n\r\n", messageContains: "field value")
    expectBadRequest(head + "X: a\r\n folded\r\n\r\n", messageContains: "folding")
    expectBadRequest(head + "NoColon\r\n\r\n", messageContains: "colon")
  }

  @Test func rejectsFramingFieldsInTrailers() {
    let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    for name in ["Content-Length: 5", "Transfer-Encoding: chunked", "host: evil", "X-Request-ID: other"] {
      expectBadRequest(head + name + "\r\n\r\n", messageContains: "trailer")
    }
  }

  @Test func rejectsOversizedTrailersWith431() {
    let limits = RequestLimits(maxBody: 100, maxHeaderBytes: 60, maxHeaderCount: 2)
    let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"  // 48 bytes: fits
    expectAccepted(head + "0\r\nA: 1\r\nB: 2\r\n\r\n", limits: limits)
    expectRejected(
      bytes(head + "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), limits: limits, status: 431, code: "headers_too_large",
      messageContains: "trailer fields")
    let big = "X: " + String(repeating: "v", count: 60) + "\r\n"
    expectRejected(
      bytes(head + "0\r\n" + big + "\r\n"), limits: limits, status: 431, code: "headers_too_large",
      messageContains: "trailer section")
  }

  // MARK: - X-Request-ID

  @Test func propagatesSaneRequestIDIntoRejection() {
    let r = frame("GET / HTTP/1.1\r\nx-request-id:  Abc.1_2:3-4 \r\nBad Name: x\r\n\r\n").rejection
    #expect(r?.requestID == "Abc.1_2:3-4")
    #expect(r?.status == 400)
    let max = String(repeating: "z", count: 128)
    #expect(frame("GET / HTTP/1.1\r\nX-Request-ID: \(max)\r\n\u{1}\r\n\r\n").rejection?.requestID == max)
  }

  @Test func omitsInsaneOrUnparsedRequestID() {
    let insane = ["", "a b", "a/b", "a\u{E9}", String(repeating: "z", count: 129), "\"q\""]
    for value in insane {
      let r = frame("GET / HTTP/1.1\r\nX-Request-ID: \(value)\r\nBad Name: x\r\n\r\n").rejection
      #expect(r != nil)
      #expect(r?.requestID == nil, "\(value.debugDescription)")
    }
    // A tab before the value: some parsers keep it in the value, so the proxy does not consider it sane.
    #expect(frame("GET / HTTP/1.1\r\nX-Request-ID:\tabc\r\nBad Name: x\r\n\r\n").rejection?.requestID == nil)
    // The header comes after the error: not parsed yet.
    #expect(frame("GET / HTTP/1.1\r\nBad Name: x\r\nX-Request-ID: abc\r\n\r\n").rejection?.requestID == nil)
    // The error is inside the X-Request-ID line itself.
    #expect(frame("GET / HTTP/1.1\r\nX-Request-ID: abc\u{0}\r\n\r\n").rejection?.requestID == nil)
  }

  @Test func usesTheFirstRequestIDOfAHead() {
    let r = frame("GET / HTTP/1.1\r\nX-Request-ID: first\r\nX-Request-ID: second\r\nBad Name: x\r\n\r\n").rejection
    #expect(r?.requestID == "first")
    let insaneFirst = frame("GET / HTTP/1.1\r\nX-Request-ID: a b\r\nX-Request-ID: second\r\nBad Name: x\r\n\r\n")
    #expect(insaneFirst.rejection != nil && insaneFirst.rejection?.requestID == nil)
  }

  @Test func keepsRequestIDForBodyErrorsButNotForTheNextRequest() {
    let chunked = "POST / HTTP/1.1\r\nX-Request-ID: req-7\r\nTransfer-Encoding: chunked\r\n\r\n"
    #expect(frame(chunked + "zz\r\n").rejection?.requestID == "req-7")
    #expect(frame(chunked + "0\r\nX: \u{1}\r\n\r\n").rejection?.requestID == "req-7")
    let next = frame("GET / HTTP/1.1\r\nX-Request-ID: req-8\r\n\r\nGET / HTTP/1.1\r\nBad Name: x\r\n\r\n")
    #expect(next.heads == 1)
    #expect(next.rejection != nil && next.rejection?.requestID == nil)
    #expect(frame("GET / HTTP/1.1\r\nX-Request-ID: req-9\r\n\r\n\r\r\n").rejection?.requestID == nil)
  }

  // MARK: - Stickiness and splitting

  @Test func rejectionIsSticky() {
    var framer = RequestFramer(limits: defaultLimits)
    let first = bytes("GET / HTTP/1.1\r\nX-Request-ID: s-1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").withUnsafeBytes {
      framer.consume($0)
    }
    #expect(first?.message == "conflicting Content-Length values")
    #expect(first?.requestID == "s-1")
    for input in [simpleGET, "", "TRACE / HTTP/1.1\r\n\r\n", postWithBody] {
      #expect(bytes(input).withUnsafeBytes { framer.consume($0) } == first)
    }
    #expect(framer.headsAccepted == 0)
  }

  @Test func emptyInputChangesNothing() {
    var framer = RequestFramer(limits: defaultLimits)
    #expect([UInt8]().withUnsafeBytes { framer.consume($0) } == nil)
    #expect(framer.headsAccepted == 0)
  }

  @Test func validInputsGiveTheSameVerdictInAnySplit() {
    for (index, (sample, heads)) in validSamples.enumerated() {
      let input = bytes(sample)
      let whole = frame(input)
      #expect(whole == Verdict(rejection: nil, heads: heads), "sample \(index): \(whole)")
      #expect(frame(input, split: .bytes) == whole, "sample \(index), 1-byte chunks")
      for seed in 0..<50 as Range<UInt64> {
        #expect(frame(input, split: .random(seed: seed &* 7919 &+ UInt64(index))) == whole, "sample \(index), seed \(seed)")
      }
    }
  }

  @Test func invalidInputsGiveTheSameVerdictInAnySplit() {
    let invalid = [
      simpleGET + "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      chunkedWithTrailers + "POST / HTTP/1.1\r\nX-Request-ID: q\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"\u{1}\"\r\n",
      "GET /" + String(repeating: "p", count: 9000) + " HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nX: " + String(repeating: "v", count: 70000) + "\r\n\r\n",
      postWithBody + "PUT / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n",
      chunkedWithTrailers + String(repeating: "\r\n", count: RequestFramer.maxEmptyLines + 1) + simpleGET,
      simpleGET + "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello",
      postWithBody + "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b c\r\nhello\r\n0\r\n\r\n",
    ]
    for (index, sample) in invalid.enumerated() {
      let input = bytes(sample)
      let whole = frame(input)
      #expect(whole.rejection != nil, "sample \(index)")
      #expect(frame(input, split: .bytes) == whole, "sample \(index), 1-byte chunks")
      for seed in 0..<20 as Range<UInt64> {
        #expect(frame(input, split: .random(seed: seed)) == whole, "sample \(index), seed \(seed)")
      }
    }
  }

  @Test func limitsCrossedInsideBulkScansMatchByteByByte() {
    // The bulk scans (target, uninterpreted values) must stop exactly where a limit is crossed.
    let input = bytes("GET /" + String(repeating: "t", count: 300) + " HTTP/1.1\r\nX: " + String(repeating: "v", count: 300) + "\r\n\r\n")
    for line in stride(from: 250, through: 330, by: 7) {
      for head in stride(from: 200, through: 700, by: 13) {
        let limits = RequestLimits(maxBody: 0, maxRequestLine: line, maxHeaderBytes: head)
        let whole = frame(input, limits: limits)
        #expect(frame(input, limits: limits, split: .bytes) == whole, "line \(line) head \(head): \(whole)")
        #expect(frame(input, limits: limits, split: .random(seed: UInt64(line * head))) == whole)
      }
    }
  }

  @Test func mutatedRequestsNeverCrashAndVerdictsAreSplitIndependentAndSticky() {
    var rng = SplitMix64(seed: 0xA11CE)
    let interesting: [UInt8] = [
      0x00, 0x01, 0x09, 0x0A, 0x0D, 0x20, 0x22, 0x23, 0x2C, 0x2F, 0x30, 0x3A, 0x3B, 0x3D, 0x5C, 0x61, 0x7F, 0x80, 0xFF, 0x46,
    ]
    let limits = RequestLimits(maxBody: 4096, maxRequestLine: 256, maxHeaderBytes: 1024, maxHeaderCount: 12)
    var rejected = 0
    var accepted = 0
    for iteration in 0..<4000 {
      var input = bytes(validSamples[Int(rng.next() % UInt64(validSamples.count))].0)
      let mutations = Int(rng.next() % 3) + 1
      for _ in 0..<mutations where !input.isEmpty {
        let at = Int(rng.next() % UInt64(input.count))
        let byte = rng.next() % 2 == 0 ? interesting[Int(rng.next() % UInt64(interesting.count))] : UInt8(truncatingIfNeeded: rng.next())
        switch rng.next() % 6 {
        case 0: input[at] = byte
        case 1: input.insert(byte, at: at)
        case 2: input.remove(at: at)
        case 3:
          let end = min(input.count, at + Int(rng.next() % 40))
          input.insert(contentsOf: input[at..<end], at: at)
        case 4: input.removeSubrange(at..<min(input.count, at + Int(rng.next() % 20)))
        default: input.removeSubrange(at...)
        }
      }
      let whole = frame(input, limits: limits)
      #expect(frame(input, limits: limits, split: .bytes) == whole, "iteration \(iteration)")
      #expect(frame(input, limits: limits, split: .random(seed: UInt64(iteration))) == whole, "iteration \(iteration)")
      if let r = whole.rejection {
        rejected += 1
        #expect([400, 413, 414, 431].contains(r.status))
        // Sticky: more valid bytes change neither the rejection nor the count.
        var framer = RequestFramer(limits: limits)
        #expect(input.withUnsafeBytes { framer.consume($0) } == r)
        #expect(bytes(simpleGET).withUnsafeBytes { framer.consume($0) } == r)
        #expect(framer.headsAccepted == whole.heads)
      } else {
        accepted += 1
      }
    }
    // The mutations must exercise both outcomes.
    #expect(rejected > 1000)
    #expect(accepted > 100)
  }

  @Test func tokenCharacterTableMatchesRFC9110() {
    let tchars = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
    let idChars = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-".utf8)
    for b in 0...255 {
      let byte = UInt8(b)
      #expect(HTTPBytes.isTchar(byte) == tchars.contains(byte), "tchar \(b)")
      #expect(RequestFramer.isRequestIDByte(byte) == idChars.contains(byte), "request-id \(b)")
    }
  }

  @Test func extremeLimitsNeitherCrashNorChangeVerdicts() {
    let huge = RequestLimits(maxBody: .max, maxRequestLine: .max, maxHeaderBytes: .max, maxHeaderCount: .max)
    for (sample, heads) in validSamples {
      #expect(frame(bytes(sample), limits: huge, split: .random(seed: 3)) == Verdict(rejection: nil, heads: heads))
    }
    let negative = RequestLimits(maxBody: -1, maxRequestLine: .min, maxHeaderBytes: -5, maxHeaderCount: -1)
    let verdict = frame(simpleGET, limits: negative)
    #expect(verdict.rejection?.status == 414)
    #expect(verdict.heads == 0)
  }

  @Test func packedConstantsMatchTheirNames() {
    #expect(PackedName("content-length") == PackedName.contentLength)
    #expect(PackedName("transfer-encoding") == PackedName.transferEncoding)
    #expect(PackedName("x-request-id") == PackedName.requestID)
    #expect(PackedName("host") == PackedName.host)
    #expect(PackedName("te") == PackedName.te)
    #expect(PackedName("content-lengths") != PackedName.contentLength)
    #expect(PackedMethod.pack("HEAD") == PackedMethod.head)
    #expect(PackedMethod.pack("connect") == PackedMethod.connectLower)
    #expect(PackedMethod.pack("trace") == PackedMethod.traceLower)
  }

  @Test func limitsDefaults() {
    let limits = RequestLimits(maxBody: 5)
    #expect(limits == RequestLimits(maxBody: 5, maxRequestLine: 8192, maxHeaderBytes: 65536, maxHeaderCount: 100))
    #expect(limits != RequestLimits(maxBody: 6))
  }
}

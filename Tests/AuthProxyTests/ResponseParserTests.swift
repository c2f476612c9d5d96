import Testing

@testable import AuthProxy

// MARK: - Helpers

/// Everything a parse produced, in a comparable form.
private struct Outcome: Equatable, CustomStringConvertible {
  var heads = 0
  var status: Int?
  var headers: [String] = []
  /// The head's one length (Content-Length fields are not among `headers`).
  var contentLength: Int?
  var body: [UInt8] = []
  var ended = false
  var reusable: Bool?
  /// Bytes consumed (0 after an error).
  var consumed = 0
  var error: ResponseParseError?
  /// finishAtEOF's answer, when asked.
  var completedAtEOF: Bool?

  var description: String {
    "heads=\(heads) status=\(status.map(String.init) ?? "nil") headers=\(headers) body=\(String(decoding: body, as: UTF8.self))"
      + " ended=\(ended) reusable=\(reusable.map(String.init) ?? "nil") consumed=\(consumed)"
      + " error=\(error?.reason ?? "nil") eof=\(completedAtEOF.map(String.init) ?? "nil")"
  }

  /// Records one event; checks the order rules every exchange must follow.
  mutating func record(_ event: ResponseParser.Event) {
    #expect(!ended, "event after .end")
    switch event {
    case .head(let status, let headers, let contentLength):
      #expect(heads == 0, "second .head")
      heads += 1
      self.status = status
      self.contentLength = contentLength
      self.headers = headers.map { "\($0.name): \($0.value)" }
    case .body(let slice):
      #expect(heads == 1, ".body before .head")
      #expect(!slice.isEmpty, "empty .body slice")
      body.append(contentsOf: slice)
    case .end(let reusable):
      #expect(heads == 1, ".end before .head")
      ended = true
      self.reusable = reusable
    }
  }
}

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// One `consume` call with the bytes of `input` (Array.withUnsafeBytes does not keep the typed error).
private func feed(
  _ parser: inout ResponseParser, _ input: [UInt8], _ deliver: (ResponseParser.Event) -> Bool
) -> Result<Int, ResponseParseError> {
  input.withUnsafeBytes { raw in Result { () throws(ResponseParseError) in try parser.consume(raw, deliver) } }
}

/// Feeds `pieces` in order (each piece is what one read returned), then optionally reports EOF.
/// Once the response ended, the rest is offered once more and must be refused without events.
private func parse(
  _ pieces: [[UInt8]], isHEAD: Bool = false, eof: Bool = false, maxHeadBytes: Int = 65536, maxHeaderCount: Int = 200
) -> Outcome {
  var parser = ResponseParser(isHEAD: isHEAD, maxHeadBytes: maxHeadBytes, maxHeaderCount: maxHeaderCount)
  var outcome = Outcome()
  for piece in pieces {
    switch feed(
      &parser, piece,
      {
        outcome.record($0); return true
      })
    {
    case .success(let used):
      outcome.consumed += used
      #expect(parser.isComplete == outcome.ended)
      guard used == piece.count else {
        #expect(outcome.ended, "partial consumption without backpressure or end")
        let again = feed(&parser, Array(piece[used...])) { _ in
          Issue.record("event after .end")
          return true
        }
        #expect(again == .success(0))
        if eof {
          outcome.completedAtEOF = parser.finishAtEOF {
            outcome.record($0); return true
          }
        }
        return outcome
      }
    case .failure(let error):
      outcome.error = error
      outcome.consumed = 0  // How many pieces passed before the error depends on the split.
      // The error is sticky.
      #expect(feed(&parser, [0x0A]) { _ in true } == .failure(error))
      return outcome
    }
  }
  if eof {
    outcome.completedAtEOF = parser.finishAtEOF {
      outcome.record($0); return true
    }
  }
  return outcome
}

private func parse(_ input: [UInt8], isHEAD: Bool = false, eof: Bool = false, maxHeadBytes: Int = 65536, maxHeaderCount: Int = 200)
  -> Outcome
{
  parse([input], isHEAD: isHEAD, eof: eof, maxHeadBytes: maxHeadBytes, maxHeaderCount: maxHeaderCount)
}

private func parse(_ text: String, isHEAD: Bool = false, eof: Bool = false, maxHeadBytes: Int = 65536, maxHeaderCount: Int = 200)
  -> Outcome
{
  parse([bytes(text)], isHEAD: isHEAD, eof: eof, maxHeadBytes: maxHeadBytes, maxHeaderCount: maxHeaderCount)
}

/// Parses `text` whole, one byte at a time and cut in two at every point; all must give the same outcome.
private func parseAllSplits(_ text: String, isHEAD: Bool = false, eof: Bool = false, maxHeadBytes: Int = 65536) -> Outcome {
  let input = bytes(text)
  let whole = parse([input], isHEAD: isHEAD, eof: eof, maxHeadBytes: maxHeadBytes)
  let single = parse(input.map { [$0] }, isHEAD: isHEAD, eof: eof, maxHeadBytes: maxHeadBytes)
  #expect(single == whole, "byte by byte")
  for cut in 0...input.count {
    let two = parse([Array(input[..<cut]), Array(input[cut...])], isHEAD: isHEAD, eof: eof, maxHeadBytes: maxHeadBytes)
    #expect(two == whole, "cut at \(cut)")
  }
  return whole
}

private let chunkedWithExtensionsAndTrailers =
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
  + "5;name=value\r\nhello\r\n7 ; x=\"y\"\r\n, world\r\n0;last\r\nX-Trailer: t\r\nChecksum: abc\r\n\r\n"

// MARK: - Specification

@Suite struct ResponseParserTests {

  // MARK: Bodies

  @Test func fixedLengthBody() {
    let text = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"
    let outcome = parseAllSplits(text)
    #expect(outcome.status == 200)
    #expect(outcome.headers == ["Content-Type: application/json"])
    #expect(outcome.contentLength == 11)
    #expect(outcome.body == bytes("{\"ok\":true}"))
    #expect(outcome.ended && outcome.reusable == true)
    #expect(outcome.consumed == text.utf8.count)
  }

  @Test func headerNamesKeepTheirCaseAndValuesAreTrimmed() {
    let outcome = parse("HTTP/1.1 201 Created\r\nX-A:  one two \t\r\nx-b:\tv\r\nX-Empty:\r\nX-A: again\r\ncontent-length: 0\r\n\r\n")
    #expect(outcome.status == 201)
    #expect(outcome.headers == ["X-A: one two", "x-b: v", "X-Empty: ", "X-A: again"])
    #expect(outcome.contentLength == 0)
    #expect(outcome.ended && outcome.reusable == true && outcome.body.isEmpty)
  }

  @Test func chunkedBodyWithExtensionsAndTrailers() {
    let outcome = parseAllSplits(chunkedWithExtensionsAndTrailers)
    #expect(outcome.status == 200)
    #expect(outcome.headers == ["Transfer-Encoding: chunked", "Content-Type: text/plain"])
    #expect(outcome.body == bytes("hello, world"))
    #expect(outcome.ended && outcome.reusable == true)
    #expect(outcome.consumed == chunkedWithExtensionsAndTrailers.utf8.count)
  }

  @Test func chunkedWithBareLFAndUpperCaseHex() {
    let body = String(repeating: "x", count: 0x1A)
    let outcome = parseAllSplits("HTTP/1.1 200 OK\nTransfer-Encoding: Chunked\n\n1A\n\(body)\n0\n\n")
    #expect(outcome.body == bytes(body))
    #expect(outcome.ended && outcome.reusable == true)
  }

  @Test func transferEncodingListsAndLines() {
    // The last coding decides, across lines.
    let chunked = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: , CHUNKED ,\r\n\r\n2\r\nab\r\n0\r\n\r\n")
    #expect(chunked.body == bytes("ab") && chunked.ended && chunked.reusable == true)
    let untilClose = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n2\r\nab\r\n", eof: true)
    #expect(untilClose.body == bytes("2\r\nab\r\n"))
    #expect(untilClose.completedAtEOF == true && untilClose.ended && untilClose.reusable == false)
  }

  /// RFC 9112 §6.3: the coding frames the body, the length is not passed on, and the
  /// connection is not trusted afterwards.
  @Test func transferEncodingBeatsContentLength() {
    let outcome = parseAllSplits("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n7\r\nhello12\r\n0\r\n\r\n")
    #expect(outcome.body == bytes("hello12"))
    #expect(outcome.headers == ["Transfer-Encoding: chunked"] && outcome.contentLength == nil)
    #expect(outcome.ended && outcome.reusable == false)
    let empty = parseAllSplits("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n0\r\n\r\n")
    #expect(empty.body.isEmpty && empty.contentLength == nil && empty.ended && empty.reusable == false)
  }

  @Test func aListOfEqualLengthsIsOneLength() {
    let outcome = parseAllSplits("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\nhello")
    #expect(outcome.headers.isEmpty && outcome.contentLength == 5)
    #expect(outcome.body == bytes("hello") && outcome.ended && outcome.reusable == true)
  }

  @Test func continueThenFinalResponse() {
    let text =
      "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
      + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    let outcome = parseAllSplits(text)
    #expect(outcome.heads == 1 && outcome.status == 200)
    #expect(outcome.headers.isEmpty && outcome.contentLength == 2)
    #expect(outcome.body == bytes("ok") && outcome.ended && outcome.reusable == true)
  }

  @Test func interimHeadsDoNotFrame() {
    // Framing fields of a 1xx head mean nothing (it has no content); only the line rules apply.
    let text = "HTTP/1.1 103 Early Hints\r\nContent-Length: x\r\nConnection: close\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"
    let outcome = parse(text)
    #expect(outcome.body == bytes("z") && outcome.ended && outcome.reusable == true)
    #expect(parse("HTTP/1.1 100 Continue\r\nX : y\r\n\r\n").error == .whitespaceBeforeColon)
  }

  @Test func interimResponseAloneIsNotAnAnswer() {
    var parser = ResponseParser(isHEAD: false)
    #expect(!parser.hasStarted)
    let input = bytes("HTTP/1.1 100 Continue\r\n\r\n")
    var events = 0
    let used = feed(&parser, input) { _ in
      events += 1
      return true
    }
    #expect(used == .success(input.count) && events == 0)
    #expect(parser.hasStarted && !parser.isComplete)
    #expect(!parser.finishAtEOF { _ in true })
  }

  @Test func headResponseHasNoBody() {
    let text = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
    let outcome = parseAllSplits(text, isHEAD: true)
    #expect(outcome.status == 200 && outcome.headers.isEmpty && outcome.contentLength == 1234)
    #expect(outcome.body.isEmpty && outcome.ended && outcome.reusable == true)
    // Bytes after the head are not the body of a HEAD response.
    let extra = parse(text + "abcd", isHEAD: true)
    #expect(extra.ended && extra.body.isEmpty && extra.consumed == text.utf8.count)
  }

  @Test(arguments: [204, 304])
  func noBodyStatuses(status: Int) {
    let text = "HTTP/1.1 \(status) Whatever\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n"
    let outcome = parse(text + "0123456789")
    #expect(outcome.status == status && outcome.body.isEmpty && outcome.ended)
    #expect(outcome.consumed == text.utf8.count)
  }

  @Test func zeroContentLengthEndsAtTheHead() {
    let text = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    let outcome = parseAllSplits(text)
    #expect(outcome.ended && outcome.body.isEmpty && outcome.reusable == true && outcome.consumed == text.utf8.count)
  }

  @Test func closeDelimitedBody() {
    let text = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this until close"
    let outcome = parseAllSplits(text, eof: true)
    #expect(outcome.body == bytes("all of this until close"))
    #expect(outcome.completedAtEOF == true && outcome.ended && outcome.reusable == false)
    let open = parse(text)
    #expect(!open.ended && open.consumed == text.utf8.count)
  }

  @Test(arguments: [
    "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n",
    "HTTP/1.1 100 Continue\r\n\r\n",
    "HTTP/1.1 20",
  ])
  func truncatedResponse(text: String) {
    let outcome = parseAllSplits(text, eof: true)
    #expect(outcome.completedAtEOF == false && !outcome.ended && outcome.error == nil)
  }

  @Test func nothingReceivedHasNotStarted() {
    var parser = ResponseParser(isHEAD: false)
    let used = feed(&parser, []) { _ in true }
    #expect(used == .success(0) && !parser.hasStarted && !parser.finishAtEOF { _ in true })
  }

  @Test func extraBytesAfterTheEndAreNotConsumed() {
    let first = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    let outcome = parse(first + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nho")
    #expect(outcome.body == bytes("hi") && outcome.ended && outcome.consumed == first.utf8.count)
    let chunked = parse(chunkedWithExtensionsAndTrailers + "\r\n")
    #expect(chunked.ended && chunked.consumed == chunkedWithExtensionsAndTrailers.utf8.count)
  }

  // MARK: Backpressure

  @Test(arguments: [
    "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello, world", chunkedWithExtensionsAndTrailers,
    "HTTP/1.1 200 OK\r\n\r\nhello, world",
  ])
  func backpressureStopsAfterEachSlice(text: String) throws {
    let input = bytes(text)
    let expected = parse(input, eof: true)
    var parser = ResponseParser(isHEAD: false)
    var outcome = Outcome()
    var offset = 0
    var calls = 0
    while offset < input.count && !parser.isComplete {
      let used = try feed(&parser, Array(input[offset...])) { event in
        outcome.record(event)
        if case .body = event { return false }
        return true
      }.get()
      #expect(used > 0)
      offset += used
      calls += 1
    }
    outcome.consumed = offset
    outcome.completedAtEOF = parser.finishAtEOF {
      outcome.record($0); return true
    }
    #expect(outcome == expected)
    #expect(calls > 1 || text.contains("\r\n\r\nhello, world"))
  }

  @Test func backpressureStopsMidInput() throws {
    let input = bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    var parser = ResponseParser(isHEAD: false)
    var slices: [[UInt8]] = []
    let used = try feed(&parser, input) { event in
      if case .body(let slice) = event { slices.append(Array(slice)) }
      return false
    }.get()
    // Stops right after "abc".
    #expect(used == input.count - "\r\n2\r\nde\r\n0\r\n\r\n".utf8.count)
    #expect(slices == [bytes("abc")] && !parser.isComplete)
  }

  @Test func lastFixedSliceIsFollowedByEndDespiteBackpressure() throws {
    let input = bytes("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
    var parser = ResponseParser(isHEAD: false)
    var ended = false
    let used = try feed(&parser, input) { event in
      if case .end = event { ended = true }
      return false
    }.get()
    #expect(used == input.count && ended && parser.isComplete)
  }

  // MARK: Connection reuse

  @Test(arguments: [
    ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true),
    ("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false),
    ("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n", false),
    ("HTTP/1.1 200 OK\r\nConnection: x\r\nConnection: close \r\nContent-Length: 0\r\n\r\n", false),
    ("HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 0\r\n\r\n", true),
    ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
    ("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true),
    ("HTTP/1.0 200 OK\r\nConnection: Keep-Alive, close\r\nContent-Length: 0\r\n\r\n", false),
    ("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false),
  ])
  func reusable(text: String, expected: Bool) {
    let outcome = parse(text, eof: true)
    #expect(outcome.ended && outcome.reusable == expected)
  }

  // MARK: Status line

  @Test(arguments: ["HTTP/1.1 200 OK", "HTTP/1.1 200 ", "HTTP/1.1 200", "HTTP/1.0 200 Fine \t thanks", "HTTP/1.1 599 x"])
  func acceptedStatusLines(line: String) {
    let outcome = parse(line + "\r\nContent-Length: 0\r\n\r\n")
    #expect(outcome.error == nil && outcome.ended)
  }

  @Test(arguments: [
    "HTTP/1.2 200 OK", "HTTP/2 200 OK", "http/1.1 200 OK", "HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "HTTP/1.1  200 OK",
    "HTTP/1.1 200\tOK", "HTTP/1.1 2x0 OK", " HTTP/1.1 200 OK", "HTTP/1.1 200OK", "", "ICY 200 OK",
  ])
  func malformedStatusLines(line: String) {
    #expect(parseAllSplits(line + "\r\nContent-Length: 0\r\n\r\n").error == .malformedStatusLine)
  }

  @Test func otherStatusLineErrors() {
    #expect(parse("HTTP/1.1 099 Low\r\n\r\n").error == .invalidStatusCode)
    #expect(parse("HTTP/1.1 200 O\u{1}K\r\n\r\n").error == .invalidReasonPhrase)
    #expect(parse("HTTP/1.1 200 OK\r\r\nContent-Length: 0\r\n\r\n").error == .invalidReasonPhrase)
    #expect(parseAllSplits("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n").error == .switchingProtocols)
  }

  // MARK: Header errors

  @Test(arguments: [
    ("X-A: 1\r\n folded", ResponseParseError.obsoleteLineFolding),
    ("X-A: 1\r\n\tfolded", .obsoleteLineFolding),
    ("X-A : 1", .whitespaceBeforeColon),
    ("X-A\t: 1", .whitespaceBeforeColon),
    (": 1", .emptyFieldName),
    ("X-A 1", .whitespaceBeforeColon),
    ("X-A", .missingColon),
    ("X@A: 1", .invalidFieldName),
    ("X-A: a\u{0}b", .invalidFieldValue),
    ("X-A: a\rb", .invalidFieldValue),
    ("X-A: a\u{7F}", .invalidFieldValue),
    ("X-A: a\u{1B}b", .invalidFieldValue),
    ("Content-Length: 1\r\nContent-Length: 2", .conflictingContentLengths),
    ("Content-Length: 3, 4", .conflictingContentLengths),
    ("Content-Length: +3", .invalidContentLength),
    ("Content-Length: -3", .invalidContentLength),
    ("Content-Length: 3 3", .invalidContentLength),
    ("Content-Length: 0x10", .invalidContentLength),
    ("Content-Length:", .invalidContentLength),
    ("Content-Length: 3,", .invalidContentLength),
    ("Content-Length: 99999999999999999999", .contentLengthOutOfRange),
    ("Content-Length: 4611686018427387905", .contentLengthOutOfRange),
  ])
  func headerErrors(lines: String, expected: ResponseParseError) {
    #expect(parseAllSplits("HTTP/1.1 200 OK\r\n\(lines)\r\n\r\nabc").error == expected)
  }

  @Test func equalContentLengthsAreAccepted() {
    let outcome = parse("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\ncontent-length: 3\r\n\r\nabc")
    #expect(outcome.body == bytes("abc") && outcome.ended)
    // 2^62 is the largest accepted length.
    let largest = parse("HTTP/1.1 200 OK\r\nContent-Length: 4611686018427387904\r\n\r\nabc")
    #expect(largest.error == nil && largest.body == bytes("abc") && !largest.ended)
  }

  @Test func transferEncodingInHTTP10IsRefused() {
    #expect(parse("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").error == .transferEncodingInHTTP10)
  }

  // MARK: Limits

  @Test func headSizeLimitIsExact() {
    let text = "HTTP/1.1 200 OK\r\nX-Padding: 0123456789\r\nContent-Length: 0\r\n\r\n"
    let size = text.utf8.count
    #expect(parseAllSplits(text, maxHeadBytes: size).ended)
    #expect(parseAllSplits(text, maxHeadBytes: size - 1).error == .headTooLarge)
    // Interim heads have their own budget.
    #expect(parse("HTTP/1.1 100 Continue\r\nX-Padding: 0123456789\r\n\r\n" + text, maxHeadBytes: size).ended)
  }

  @Test func oversizedLineFailsBeforeItsEnd() {
    var parser = ResponseParser(isHEAD: false, maxHeadBytes: 100)
    let input = bytes("HTTP/1.1 200 OK\r\nX-Long: " + String(repeating: "a", count: 200))
    #expect(feed(&parser, input) { _ in true } == .failure(.headTooLarge))
  }

  @Test func headerCountLimit() {
    let head = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n"
    #expect(parse(head + "\r\n", eof: true, maxHeaderCount: 3).ended)
    #expect(parse(head + "D: 4\r\n\r\n", maxHeaderCount: 3).error == .tooManyHeaders)
  }

  @Test func trailerLimits() {
    let body = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    let trailers = "T1: " + String(repeating: "t", count: 60) + "\r\nT2: 2\r\n\r\n"
    #expect(parse(body + trailers, maxHeadBytes: 80).ended)
    #expect(parse(body + trailers, maxHeadBytes: 70).error == .trailersTooLarge)
    #expect(parse(body + trailers, maxHeaderCount: 1).error == .tooManyTrailers)
    #expect(parse(body + "T1 : 1\r\n\r\n").error == .whitespaceBeforeColon)
    #expect(parse(body + " T1: 1\r\n\r\n").error == .obsoleteLineFolding)
  }

  // MARK: Chunk errors

  @Test(arguments: [
    ("zz\r\n", ResponseParseError.invalidChunkSize),
    ("\r\n", .invalidChunkSize),
    ("-5\r\n", .invalidChunkSize),
    ("5 \r\nhello\r\n0\r\n\r\n", .invalidChunkSize),
    ("5x\r\nhello\r\n0\r\n\r\n", .invalidChunkSize),
    ("0x5\r\nhello\r\n0\r\n\r\n", .invalidChunkSize),
    ("00000000000000005\r\nhello\r\n0\r\n\r\n", .chunkSizeOutOfRange),
    ("FFFFFFFFFFFFFFFF\r\n", .chunkSizeOutOfRange),
    ("5;a\u{0}b\r\nhello\r\n0\r\n\r\n", .invalidChunkExtension),
    ("5;a\rb\r\nhello\r\n0\r\n\r\n", .invalidChunkExtension),
    ("5\r\nhelloX\r\n0\r\n\r\n", .missingChunkDataCRLF),
    ("5\r\nhello\rX0\r\n\r\n", .missingChunkDataCRLF),
    ("5\r\nhello0\r\n\r\n", .missingChunkDataCRLF),
  ])
  func chunkErrors(chunks: String, expected: ResponseParseError) {
    #expect(parseAllSplits("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks).error == expected)
  }

  @Test func sixteenHexDigitsAreAccepted() {
    let outcome = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000005\r\nhello\r\n0\r\n\r\n")
    #expect(outcome.body == bytes("hello") && outcome.ended)
  }

  @Test func chunkSizeLineLimit() {
    let text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;" + String(repeating: "e", count: 100) + "\r\nhello\r\n0\r\n\r\n"
    #expect(parseAllSplits(text, maxHeadBytes: 200).ended)
    #expect(parseAllSplits(text, maxHeadBytes: 100).error == .chunkLineTooLong)
  }
}

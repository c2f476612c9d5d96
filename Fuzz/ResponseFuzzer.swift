// libFuzzer modes over the response side of the codec (ResponseParser, and ChunkSizeLine through
// it), linked into the same binary as RequestFuzzer.swift (its entry point picks the mode).
// Mode 6 feeds raw bytes; mode 7 generates valid responses (every framing: Content-Length,
// lists of equal lengths, chunked with extensions and trailers, until close, Content-Length
// beside chunked), checks they parse as generated, then mutates them. Every property is a
// `require`: a violation traps and libFuzzer keeps the input.

@testable import AuthProxy

// MARK: - Running the parser

/// Everything a parse produced, comparable across ways of feeding the same bytes.
struct ParseOutcome: Equatable {
  var status: Int?
  var headers: [String] = []
  var contentLength: Int?
  var body: [UInt8] = []
  var ended = false
  var reusable: Bool?
  var error: ResponseParseError?
  /// Bytes taken up to the end of the response (0 after an error).
  var consumed = 0
  /// finishAtEOF's answer, when the bytes ran out first.
  var completedAtEOF: Bool?
}

/// Feeds `input` in pieces of the sizes `sizes` hands out (each from an exact-size heap copy, so
/// AddressSanitizer sees any read past a piece), pausing after body slices when `pause` says so
/// and resuming with the rest at once, then reports EOF.
func parseResponse(
  _ input: [UInt8], isHEAD: Bool, maxHeadBytes: Int, sizes: (Int) -> Int, pause: () -> Bool
) -> ParseOutcome {
  var parser = ResponseParser(isHEAD: isHEAD, maxHeadBytes: maxHeadBytes, maxHeaderCount: 20)
  var outcome = ParseOutcome()
  var offset = 0
  func deliver(_ event: ResponseParser.Event) -> Bool {
    require(!outcome.ended, "no event after .end")
    switch event {
    case .head(let status, let headers, let contentLength):
      require(outcome.status == nil, "one final head")
      outcome.status = status
      outcome.headers = headers.map { "\($0.name): \($0.value)" }
      outcome.contentLength = contentLength
      for i in headers.indices {
        require(!headers.name(at: i, is: FieldName.contentLength), "Content-Length is never among the fields")
        require(!headers.line(at: i).dropLast(2).contains { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }, "no CR, LF or NUL in a line")
      }
      return true
    case .body(let slice):
      require(outcome.status != nil, ".body after .head")
      require(!slice.isEmpty, "no empty slice")
      outcome.body.append(contentsOf: slice)
      return !pause()
    case .end(let reusable):
      require(outcome.status != nil, ".end after .head")
      outcome.ended = true
      outcome.reusable = reusable
      return true
    }
  }
  while offset < input.count && !outcome.ended {
    let length = min(input.count - offset, max(1, sizes(input.count - offset)))
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 1)
    defer { buffer.deallocate() }
    buffer.copyBytes(from: input[offset..<(offset + length)])
    var taken = 0
    while taken < length && !outcome.ended {
      do throws(ResponseParseError) {
        let used = try parser.consume(UnsafeRawBufferPointer(rebasing: buffer[taken...]), deliver)
        require(used <= length - taken, "consumes at most what it was given")
        if used == 0 && !outcome.ended { require(false, "a call that takes nothing and does not end") }
        taken += used
      } catch {
        outcome.error = error
        outcome.consumed = 0
        // Sticky.
        let again = [UInt8](repeating: 0x41, count: 3).withUnsafeBytes { raw in
          Result { () throws(ResponseParseError) in try parser.consume(raw) { _ in true } }
        }
        require(again == .failure(error), "an error is sticky")
        return outcome
      }
    }
    offset += taken
  }
  outcome.consumed = offset
  if !outcome.ended { outcome.completedAtEOF = parser.finishAtEOF(deliver) }
  return outcome
}

/// What must hold for any input: the same outcome however the bytes arrive, and a body of the
/// declared length when one was declared.
@discardableResult
func checkResponse(_ input: [UInt8], isHEAD: Bool, maxHeadBytes: Int, _ choices: inout Choices) -> ParseOutcome {
  let whole = parseResponse(input, isHEAD: isHEAD, maxHeadBytes: maxHeadBytes, sizes: { $0 }, pause: { false })
  let single = parseResponse(input, isHEAD: isHEAD, maxHeadBytes: maxHeadBytes, sizes: { _ in 1 }, pause: { false })
  require(single == whole, "byte by byte \(single) != whole \(whole) for \(show(input))")
  var k = Int(choices.byte())
  let pieces = parseResponse(
    input, isHEAD: isHEAD, maxHeadBytes: maxHeadBytes,
    sizes: { _ in
      k = (k &* 1_103_515_245 &+ 12345) & 0x7FFF_FFFF
      return 1 + k % 64
    },
    pause: {
      k &+= 7
      return k % 3 == 0
    })
  require(pieces == whole, "in pieces with pauses \(pieces) != whole \(whole) for \(show(input))")
  if whole.ended, let length = whole.contentLength, let status = whole.status, !isHEAD, status != 204, status != 304,
    whole.completedAtEOF == nil
  {
    require(whole.body.count == length, "a body of the declared length: \(whole.body.count) != \(length)")
  }
  if whole.error != nil { require(!whole.ended, "no end after an error") }
  return whole
}

// MARK: - Mode 6: raw bytes

func fuzzRawResponse(_ choices: inout Choices) {
  let isHEAD = choices.chance(10)
  let maxHeadBytes = choices.pick([16, 64, 256, 65536])
  let input = choices.rest()
  input.withUnsafeBufferPointer { buffer in
    var rest = Choices(buffer)
    checkResponse(input, isHEAD: isHEAD, maxHeadBytes: maxHeadBytes, &rest)
  }
}

// MARK: - Mode 7: generated valid responses, then mutated

struct GeneratedResponse {
  var bytes: [UInt8] = []
  var status = 200
  var fields: [String] = []
  var body: [UInt8] = []
  var contentLength: Int?
  var untilClose = false
  var isHEAD = false
}

let validChunkExtensions = [";a", ";foo=bar", " ;a=\"x y\"", ";a;b=c", "\t; n = v", ";q=\"\\\"\"", ";e=\"\u{E9}\""]

func generateResponse(_ choices: inout Choices) -> GeneratedResponse {
  var out = GeneratedResponse()
  var bytes: [UInt8] = []
  // Interim answers first, sometimes.
  for _ in 0..<choices.below(3) where choices.chance(20) {
    bytes += Array("HTTP/1.1 \(choices.pick([100, 102, 103])) Info".utf8) + lineEnd(&choices)
    if choices.chance(50) { bytes += Array("Link: </a>".utf8) + lineEnd(&choices) }
    bytes += lineEnd(&choices)
  }
  let http10 = choices.chance(15)
  out.status = choices.pick([200, 200, 201, 204, 206, 299, 304, 404, 500, 599])
  out.isHEAD = choices.chance(10)
  bytes += Array("HTTP/1.\(http10 ? 0 : 1) \(out.status)".utf8)
  if choices.chance(80) { bytes += Array(" Some Reason".utf8) }
  bytes += lineEnd(&choices)
  var lines: [[UInt8]] = []
  for _ in 0..<choices.below(6) {
    let name = ordinaryName(&choices)
    guard lower(name) != "connection" else { continue }
    lines.append(Array(name.utf8) + [0x3A] + fieldValue(&choices))
  }
  let bodiless = out.isHEAD || out.status == 204 || out.status == 304
  let data: [UInt8] = (0..<choices.below(200)).map { _ in choices.byte() }
  var body: [UInt8] = []
  let framing = choices.below(4)
  switch framing {
  case 0:
    // Content-Length: one field, a list of equal values, or repeated fields.
    let length = bodiless ? choices.below(5000) : data.count
    let value = choices.chance(20) ? "\(length), \(length)" : "\(length)"
    lines.insert(randomCase("Content-Length", &choices) + Array(": \(value)".utf8), at: choices.below(lines.count + 1))
    if choices.chance(15) { lines.append(Array("content-length: \(length)".utf8)) }
    out.contentLength = length
    if !bodiless { body = data }
  case 1 where !http10, 3 where !http10:
    // Chunked; in case 3 beside a Content-Length that must lose (§6.3).
    lines.insert(randomCase("Transfer-Encoding", &choices) + Array(": chunked".utf8), at: choices.below(lines.count + 1))
    if framing == 3 {
      lines.insert(Array("Content-Length: \(choices.below(100))".utf8), at: choices.below(lines.count + 1))
    }
    if !bodiless {
      var rest = data[...]
      while !rest.isEmpty {
        let size = min(rest.count, 1 + choices.below(80))
        body += Array(String(size, radix: 16).utf8)
        if choices.chance(20) { body += Array(choices.pick(validChunkExtensions).utf8) }
        body += lineEnd(&choices) + rest.prefix(size) + lineEnd(&choices)
        rest = rest.dropFirst(size)
      }
      body += Array("0".utf8) + (choices.chance(20) ? Array(choices.pick(validChunkExtensions).utf8) : []) + lineEnd(&choices)
      for _ in 0..<choices.below(3) { body += Array(ordinaryName(&choices).utf8) + [0x3A] + fieldValue(&choices) + lineEnd(&choices) }
      body += lineEnd(&choices)
    }
  default:
    // Until close (no length): not for a bodiless answer, which ends at its head.
    if !bodiless {
      out.untilClose = true
      body = data
    }
  }
  for line in lines {
    bytes += line + lineEnd(&choices)
    // What the parser keeps: every field but Content-Length, its value trimmed. The colon is
    // found among the bytes: in a String, a combining mark right after it (obs-text such as
    // CC 81) joins it into one Character that is not ":".
    let colon = line.firstIndex(of: 0x3A)!
    let name = String(decoding: line[..<colon], as: UTF8.self)
    if lower(name) != "content-length" { out.fields.append(name + ": " + trimOWS(String(decoding: line[(colon + 1)...], as: UTF8.self))) }
  }
  bytes += lineEnd(&choices)
  out.bytes = bytes + body
  out.body = bodiless ? [] : data
  return out
}

func fuzzGeneratedResponse(_ choices: inout Choices, mutate: Bool) {
  let generated = generateResponse(&choices)
  if !mutate {
    let outcome = checkResponse(generated.bytes, isHEAD: generated.isHEAD, maxHeadBytes: 65536, &choices)
    require(outcome.error == nil, "a valid response parses: \(String(describing: outcome.error)) for \(show(generated.bytes))")
    require(outcome.status == generated.status, "its status")
    require(outcome.headers == generated.fields, "its fields but Content-Length: \(outcome.headers) vs \(generated.fields)")
    require(outcome.contentLength == generated.contentLength, "its one length: \(String(describing: outcome.contentLength))")
    require(outcome.body == generated.body, "its body, de-chunked: \(outcome.body.count) vs \(generated.body.count) bytes")
    require(outcome.ended, "it ends")
    require((outcome.completedAtEOF == true) == generated.untilClose, "it ends at EOF exactly when close-delimited")
    require(outcome.consumed == generated.bytes.count, "all of it is taken")
    return
  }
  var bytes = generated.bytes
  let interesting: [UInt8] = [0x00, 0x09, 0x0A, 0x0D, 0x20, 0x22, 0x2C, 0x30, 0x3A, 0x3B, 0x3D, 0x5C, 0x7F, 0x80, 0xFF, 0x66, 0x46]
  for _ in 0..<(1 + choices.below(3)) where !bytes.isEmpty {
    let at = choices.below(bytes.count)
    let framing = choices.below(4)
    switch framing {
    case 0: bytes[at] = choices.pick(interesting)
    case 1: bytes.insert(choices.pick(interesting), at: at)
    case 2: bytes.remove(at: at)
    default: bytes[at] ^= UInt8(1 << choices.below(8))
    }
  }
  checkResponse(bytes, isHEAD: generated.isHEAD, maxHeadBytes: choices.pick([64, 65536]), &choices)
}

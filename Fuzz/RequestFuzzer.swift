// libFuzzer target over the proxy's pure parts: the request framing check (RequestFramer), the
// request policy (RequestPolicy), the header rewriting (HeaderRewrite) and, in
// ResponseFuzzer.swift, the response parser (ResponseParser). Built and run only by scripts/fuzz
// (it needs -sanitize=fuzzer); a plain `swift build` never sees these files.
//
// The fuzz input is read as a stream of choices: its first byte picks a mode, the rest drive
// that mode's generator (or are the raw bytes, in mode 0). Every property below is a `require`:
// a violation prints what happened and traps, and libFuzzer keeps the input as a crash file.

@testable import AuthProxy

// MARK: - Entry point

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  guard let data, size > 0 else { return 0 }
  var choices = Choices(UnsafeBufferPointer(start: data, count: size))
  switch choices.byte() % 9 {
  case 0: fuzzRawFraming(&choices)
  case 1: fuzzValidRequests(&choices, mutate: false)
  case 2: fuzzValidRequests(&choices, mutate: true)
  case 3: fuzzHeaderRewrite(&choices)
  case 4: fuzzPolicyNormalize(&choices)
  case 5: fuzzAuthPathVariants(&choices)
  // The response side (ResponseFuzzer.swift).
  case 6: fuzzRawResponse(&choices)
  case 7: fuzzGeneratedResponse(&choices, mutate: false)
  default: fuzzGeneratedResponse(&choices, mutate: true)
  }
  return 0
}

func require(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) {
  if !condition { fatalError("property violated: \(message())", file: file, line: line) }
}

// MARK: - Choices

/// The fuzz bytes as decisions; past the end every decision is 0 (the simplest choice).
struct Choices {
  let data: UnsafeBufferPointer<UInt8>
  var index = 0

  init(_ data: UnsafeBufferPointer<UInt8>) { self.data = data }

  var isExhausted: Bool { index >= data.count }

  mutating func byte() -> UInt8 {
    guard index < data.count else { return 0 }
    defer { index += 1 }
    return data[index]
  }

  /// 0..<upper (upper ≤ 65536).
  mutating func below(_ upper: Int) -> Int {
    guard upper > 1 else { return 0 }
    let raw = upper <= 256 ? Int(byte()) : Int(byte()) << 8 | Int(byte())
    return raw % upper
  }

  mutating func chance(_ percent: Int) -> Bool { below(100) < percent }

  mutating func pick<T>(_ options: [T]) -> T { options[below(options.count)] }

  /// The bytes not used yet.
  mutating func rest() -> [UInt8] {
    guard index < data.count else { return [] }
    defer { index = data.count }
    return Array(data[index...])
  }
}

// MARK: - Framing: shared properties

struct FramerVerdict: Equatable {
  var rejection: FramingRejection?
  var heads: Int
  var readingHead: Bool
}

/// Feeds `bytes` from an exact-size heap copy, so that AddressSanitizer sees any read past a piece.
func feed(_ framer: inout RequestFramer, _ bytes: ArraySlice<UInt8>) -> FramingRejection? {
  let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
  defer { buffer.deallocate() }
  buffer.copyBytes(from: bytes)
  return framer.consume(UnsafeRawBufferPointer(buffer))
}

/// Runs `input` through the framer whole, byte by byte and in pieces cut where `choices` says,
/// and checks what must hold whatever the input: the same verdict however the bytes are split,
/// a rejection that is sticky and well-formed, every prefix before the rejecting byte accepted.
@discardableResult
func checkFraming(_ input: [UInt8], limits: RequestLimits, _ choices: inout Choices) -> FramerVerdict {
  // Whole.
  var whole = RequestFramer(limits: limits)
  let wholeRejection = feed(&whole, input[...])
  let verdict = FramerVerdict(rejection: wholeRejection, heads: whole.headsAccepted, readingHead: whole.isReadingHead)

  // Byte by byte: also finds the index of the rejecting byte.
  var single = RequestFramer(limits: limits)
  var rejectedAt: Int?
  var singleRejection: FramingRejection?
  for i in input.indices {
    let r = feed(&single, input[i..<(i + 1)])
    if let first = singleRejection {
      require(r == first, "a rejection is sticky: \(String(describing: r)) after \(first)")
    } else if let r {
      singleRejection = r
      rejectedAt = i
    }
  }
  let singleVerdict = FramerVerdict(rejection: singleRejection, heads: single.headsAccepted, readingHead: single.isReadingHead)
  require(singleVerdict == verdict, "byte by byte \(singleVerdict) != whole \(verdict) for \(show(input))")

  // Pieces of 1 to 64 bytes, cut where the choices say.
  var pieces = RequestFramer(limits: limits)
  var piecesRejection: FramingRejection?
  var offset = 0
  while offset < input.count {
    let length = min(input.count - offset, 1 + choices.below(64))
    let r = feed(&pieces, input[offset..<(offset + length)])
    if let first = piecesRejection { require(r == first, "sticky in pieces") } else { piecesRejection = r }
    offset += length
  }
  let piecesVerdict = FramerVerdict(rejection: piecesRejection, heads: pieces.headsAccepted, readingHead: pieces.isReadingHead)
  require(piecesVerdict == verdict, "pieces \(piecesVerdict) != whole \(verdict) for \(show(input))")

  guard let rejection = wholeRejection, let rejectedAt else { return verdict }

  // Everything before the rejecting byte is acceptable on its own.
  var prefix = RequestFramer(limits: limits)
  require(feed(&prefix, input[..<rejectedAt]) == nil, "the prefix before byte \(rejectedAt) is accepted")
  require(feed(&prefix, input[rejectedAt...rejectedAt]) == rejection, "and that byte is rejected the same way")

  // Sticky: more bytes, or none, change nothing.
  let headsBefore = whole.headsAccepted
  require(feed(&whole, [0x0D, 0x0A, 0x0D, 0x0A][...]) == rejection, "sticky after more bytes")
  require(feed(&whole, [][...]) == rejection, "sticky with no bytes")
  require(whole.headsAccepted == headsBefore, "no head accepted after a rejection")

  // Well-formed.
  let codes = [400: "bad_request", 413: "body_too_large", 414: "uri_too_long", 431: "headers_too_large"]
  require(codes[rejection.status] == rejection.code, "status \(rejection.status) with code \(rejection.code)")
  require(!rejection.message.isEmpty, "a message")
  if let id = rejection.requestID { require(RequestID.isSane(id), "an echoed request id is sane: \(id)") }
  return verdict
}

func show(_ bytes: [UInt8]) -> String {
  var out = "\""
  for b in bytes.prefix(400) {
    switch b {
    case 0x0D: out += "\\r"
    case 0x0A: out += "\\n"
    case 0x20..<0x7F where b != 0x22 && b != 0x5C: out.append(Character(UnicodeScalar(b)))
    default: out += "\\x" + String(b, radix: 16)
    }
  }
  return out + (bytes.count > 400 ? "…\" (\(bytes.count) bytes)" : "\"")
}

// MARK: - Mode 0: raw bytes

func fuzzRawFraming(_ choices: inout Choices) {
  let limits = RequestLimits(
    maxBody: choices.pick([0, 1, 5, 16, 100, 1 << 20]), maxRequestLine: choices.pick([0, 8, 20, 64, 8192]),
    maxHeaderBytes: choices.pick([0, 16, 48, 200, 65536]), maxHeaderCount: choices.pick([0, 1, 2, 5, 100]))
  let splitSeed = choices.byte()
  let input = choices.rest()
  // The cut points come from the input itself (from an offset the seed picks), so they vary with it.
  input.withUnsafeBufferPointer { buffer in
    var splits = Choices(buffer)
    splits.index = buffer.isEmpty ? 0 : Int(splitSeed) % buffer.count
    checkFraming(input, limits: limits, &splits)
  }
}

// MARK: - Modes 1 and 2: generated valid requests, then mutated

/// One generated request and the sizes the framer's limits apply to.
struct GeneratedRequest {
  var bytes: [UInt8] = []
  var method = ""
  var target: [UInt8] = []
  /// The body's data (de-chunked).
  var data: [UInt8] = []
  var requestLine = 0
  var headBytes = 0
  var fieldCount = 0
  var trailerBytes = 0
  var trailerCount = 0
  var bodyLength = 0
}

let tchars = Array("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
let pchars = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@".utf8)

func randomCase(_ text: String, _ choices: inout Choices) -> [UInt8] {
  text.utf8.map { b in
    guard choices.chance(30) else { return b }
    if b >= 0x61 && b <= 0x7A { return b - 0x20 }
    if b >= 0x41 && b <= 0x5A { return b + 0x20 }
    return b
  }
}

func token(_ choices: inout Choices, maxLength: Int = 12) -> [UInt8] {
  (0...choices.below(maxLength)).map { _ in choices.pick(tchars) }
}

/// A random field name that is not one the framer reads itself (or refuses in trailers).
func ordinaryName(_ choices: inout Choices) -> String {
  let name = String(decoding: token(&choices), as: UTF8.self)
  return framingNames.contains(lower(name)) ? "X-" + name : name
}

/// A field value: optional OWS, then visible bytes (obs-text too) with inner SP/HTAB, optional OWS.
func fieldValue(_ choices: inout Choices, maxLength: Int = 24) -> [UInt8] {
  var value: [UInt8] = []
  if choices.chance(20) { value.append(choices.pick([0x20, 0x20, 0x09])) }
  let length = choices.below(maxLength + 1)
  for i in 0..<length {
    let kind = choices.below(20)
    if kind == 0 && i > 0 && i < length - 1 {
      value.append(choices.pick([0x20, 0x09]))
    } else if kind == 1 {
      value.append(UInt8(0x80 + choices.below(0x80)))
    } else {
      value.append(UInt8(0x21 + choices.below(0x7E - 0x21 + 1)))
    }
  }
  if choices.chance(20) { value.append(choices.pick([0x20, 0x09])) }
  return value
}

func lineEnd(_ choices: inout Choices) -> [UInt8] { choices.chance(8) ? [0x0A] : [0x0D, 0x0A] }

/// A request the framer must accept (and frame as RFC 9112 says).
func generateRequest(_ choices: inout Choices) -> GeneratedRequest {
  var out = GeneratedRequest()
  let method = choices.pick(["GET", "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND", "QUERY", "purge"])
  var target: [UInt8] = [0x2F]
  let long = choices.chance(5)
  for _ in 0..<(long ? 200 + choices.below(300) : choices.below(30)) {
    switch choices.below(12) {
    case 0 where target.last != 0x2F: target.append(0x2F)  // never "//" at the start
    case 1: target.append(contentsOf: Array("%2F".utf8))
    default: target.append(choices.pick(pchars))
    }
  }
  if choices.chance(30) {
    target.append(0x3F)
    for _ in 0..<choices.below(20) { target.append(choices.pick(pchars + Array("/?".utf8))) }
  }
  let http10 = choices.chance(10)
  out.method = method
  out.target = target
  let requestLine = Array(method.utf8) + [0x20] + target + [0x20] + Array((http10 ? "HTTP/1.0" : "HTTP/1.1").utf8)
  out.requestLine = requestLine.count
  var head = requestLine + lineEnd(&choices)

  var fields: [[UInt8]] = []
  let names = [
    "Host", "Accept", "Content-Type", "X-Request-ID", "Connection", "Cookie", "X-Custom", "TE", "Authorization",
    "Proxy-Authorization", "Expect", "User-Agent", "Keep-Alive", "Upgrade", "Trailer",
  ]
  for _ in 0..<choices.below(7) {
    let nameText = choices.chance(60) ? choices.pick(names) : ordinaryName(&choices)
    var value = fieldValue(&choices)
    if nameText == "TE" {
      value = Array(
        choices.pick(["trailers", "gzip", "deflate;q=0.5", "trailers, deflate", "chunkedx", "gzip;q=chunked", "\"chunked\"", "x-chunked"])
          .utf8)
    }
    fields.append(randomCase(nameText, &choices) + [0x3A] + value)
  }

  // Framing.
  let isHEAD = method == "HEAD"
  var body: [UInt8] = []
  switch choices.below(3) {
  case 1:
    let length = isHEAD ? 0 : choices.below(300)
    out.bodyLength = length
    let zeros = choices.chance(10) ? "00" : ""
    let value = randomCase("Content-Length", &choices) + [0x3A] + (choices.chance(70) ? [0x20] : []) + Array("\(zeros)\(length)".utf8)
    fields.insert(value, at: choices.below(fields.count + 1))
    if choices.chance(10) { fields.append(randomCase("content-length", &choices) + Array(": \(length)".utf8)) }
    body = (0..<length).map { _ in choices.byte() }
    out.data = body
  case 2 where !isHEAD && !http10:
    let te =
      randomCase("Transfer-Encoding", &choices) + [0x3A] + (choices.chance(70) ? [0x20] : []) + randomCase("chunked", &choices)
      + (choices.chance(10) ? [choices.pick([0x20, 0x09])] : [])
    fields.insert(te, at: choices.below(fields.count + 1))
    var total = 0
    for _ in 0..<choices.below(4) {
      let size = 1 + choices.below(100)
      total += size
      var hex = String(size, radix: 16)
      if choices.chance(20) { hex = hex.uppercased() }
      if choices.chance(10) { hex = "000" + hex }
      if choices.chance(10) { hex += choices.pick([";foo=bar", " ;a", ";a=\"x;y\";b"]) }
      body += Array(hex.utf8) + lineEnd(&choices)
      let data = (0..<size).map { _ in choices.byte() }
      out.data += data
      body += data + lineEnd(&choices)
    }
    out.bodyLength = total
    body += Array((choices.chance(10) ? "000" : "0").utf8) + lineEnd(&choices)
    var trailers: [UInt8] = []
    for _ in 0..<choices.below(3) {
      let name = choices.chance(50) ? choices.pick(["X-Checksum", "Expires", "X-Trailer"]) : ordinaryName(&choices)
      trailers += randomCase(name, &choices) + [0x3A] + fieldValue(&choices) + lineEnd(&choices)
      out.trailerCount += 1
    }
    trailers += lineEnd(&choices)
    out.trailerBytes = trailers.count
    body += trailers
  default:
    break
  }

  for field in fields { head += field + lineEnd(&choices) }
  head += lineEnd(&choices)
  out.fieldCount = fields.count
  out.headBytes = head.count
  // Empty lines before the request line are ignored (RFC 9112 §2.2).
  let empty = choices.chance(5) ? lineEnd(&choices) : []
  out.bytes = empty + head + body
  return out
}

/// Names the framer reads itself, or refuses in trailers: the generator must not make them by chance.
let framingNames: Set<String> = ["content-length", "transfer-encoding", "te", "host", "x-request-id"]

func fuzzValidRequests(_ choices: inout Choices, mutate: Bool) {
  var requests: [GeneratedRequest] = []
  for _ in 0..<(1 + choices.below(4)) {
    let request = generateRequest(&choices)
    requests.append(request)
  }
  let input = requests.flatMap(\.bytes)
  // Exactly the largest sizes: everything fits.
  let exact = RequestLimits(
    maxBody: requests.map(\.bodyLength).max()!, maxRequestLine: requests.map(\.requestLine).max()!,
    maxHeaderBytes: requests.map { max($0.headBytes, $0.trailerBytes) }.max()!,
    maxHeaderCount: requests.map { max($0.fieldCount, $0.trailerCount) }.max()!)

  if !mutate {
    // Generated names may collide with the framing names (e.g. a random "te"): only check those without.
    let verdict = checkFraming(input, limits: exact, &choices)
    require(verdict.rejection == nil, "valid requests are accepted: \(String(describing: verdict.rejection)) for \(show(input))")
    require(verdict.heads == requests.count, "\(requests.count) heads accepted, not \(verdict.heads)")
    require(!verdict.readingHead, "not inside a head at the end")

    // The listener's way: cut request after request out of the bytes, then split each.
    var cutter = RequestFramer(limits: exact)
    var offset = 0
    for (n, expected) in requests.enumerated() {
      let (consumed, rejection) = input[offset...].withUnsafeBytes { cutter.consumeRequest($0) }
      require(rejection == nil, "request \(n) is cut without a rejection")
      let head = RequestHead(input[offset..<(offset + consumed)])
      require(consumed == expected.bytes.count, "request \(n) is \(expected.bytes.count) bytes, cut at \(consumed)")
      require(head?.method == expected.method, "request \(n)'s method")
      require(head.map { Array($0.target.utf8) } == expected.target, "request \(n)'s target")
      require(head?.body == expected.data, "request \(n)'s body: \(expected.data.count) bytes")
      offset += consumed
    }

    // One limit one below the largest size: refused with that limit's status.
    var tight = exact
    let expected: Int
    switch choices.below(4) {
    case 0 where exact.maxRequestLine > 0:
      tight.maxRequestLine -= 1
      expected = 414
    case 1 where exact.maxHeaderBytes > 0:
      tight.maxHeaderBytes -= 1
      expected = 431
    case 2 where exact.maxHeaderCount > 0:
      tight.maxHeaderCount -= 1
      expected = 431
    case 3 where exact.maxBody > 0:
      tight.maxBody -= 1
      expected = 413
    default:
      return
    }
    let refused = checkFraming(input, limits: tight, &choices)
    require(refused.rejection?.status == expected, "limit \(tight) gives \(expected), not \(String(describing: refused.rejection))")
    return
  }

  // Mutated: only the properties that hold for any input.
  var bytes = input
  let interesting: [UInt8] = [
    0x00, 0x09, 0x0A, 0x0D, 0x20, 0x22, 0x2B, 0x2C, 0x2D, 0x2F, 0x30, 0x31, 0x3A, 0x3B, 0x7F, 0x80, 0xFF, 0x61, 0x46,
  ]
  for _ in 0..<(1 + choices.below(3)) where !bytes.isEmpty {
    let at = choices.below(bytes.count)
    switch choices.below(5) {
    case 0: bytes[at] = choices.pick(interesting)
    case 1: bytes.insert(choices.pick(interesting), at: at)
    case 2: bytes.remove(at: at)
    case 3: bytes[at] ^= UInt8(1 << choices.below(8))
    default:
      // Duplicate a stretch (a header line, a chunk, a whole request).
      let length = min(bytes.count - at, 1 + choices.below(40))
      bytes.insert(contentsOf: bytes[at..<(at + length)], at: min(bytes.count, at + length))
    }
  }
  checkFraming(bytes, limits: choices.chance(50) ? exact : RequestLimits(maxBody: 1 << 20), &choices)
}

// MARK: - Mode 3: header rewriting

let rewrite = HeaderRewrite(userAgent: "authproxy/fuzz")
let ourAuthorization = "Bearer fuzz-token"
/// What never goes upstream from the app (SPEC §4), besides what Connection names.
let neverForwarded: Set<String> = [
  "authorization", "proxy-authorization", "connection", "keep-alive", "close", "te", "trailer", "transfer-encoding", "upgrade",
  "host", "content-length", "proxy-connection",
]
let neverBack: Set<String> = [
  "connection", "keep-alive", "close", "te", "trailer", "transfer-encoding", "upgrade", "proxy-connection", "proxy-authenticate",
]

func lower(_ s: String) -> String { String(decoding: s.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self) }

/// Without leading and trailing SP and HTAB (RFC 9110 OWS).
func trimOWS<S: StringProtocol>(_ s: S) -> String {
  let bytes = Array(s.utf8)
  let isOWS: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
  guard let first = bytes.firstIndex(where: { !isOWS($0) }), let last = bytes.lastIndex(where: { !isOWS($0) }) else { return "" }
  return String(decoding: bytes[first...last], as: UTF8.self)
}

/// The CRLF-separated lines of `bytes`, as text.
func crlfLines(_ bytes: ArraySlice<UInt8>) -> [String] {
  var lines: [String] = []
  var start = bytes.startIndex
  var i = bytes.startIndex
  while i < bytes.endIndex {
    if bytes[i] == 0x0D && i + 1 < bytes.endIndex && bytes[i + 1] == 0x0A {
      lines.append(String(decoding: bytes[start..<i], as: UTF8.self))
      i += 2
      start = i
    } else {
      i += 1
    }
  }
  lines.append(String(decoding: bytes[start..<bytes.endIndex], as: UTF8.self))
  return lines
}

/// The names a header list's Connection fields name, as a recipient reads them.
func connectionTokens(_ headers: [(name: String, value: String)]) -> Set<String> {
  var names: Set<String> = []
  for (name, value) in headers where lower(name) == "connection" {
    for element in value.split(separator: ",") {
      names.insert(lower(trimOWS(element)))
    }
  }
  return names
}

func headerList(_ choices: inout Choices) -> [(name: String, value: String)] {
  let names = [
    "Authorization", "Proxy-Authorization", "Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Host",
    "Content-Length", "Expect", "X-Request-ID", "User-Agent", "Proxy-Connection", "Proxy-Foo", "Accept", "Content-Type", "X-Hop",
    "X-Custom", "Cookie", "Idempotency-Key", "Proxy-Authenticate", "Set-Cookie", "X-Page",
  ]
  var headers: [(name: String, value: String)] = []
  for _ in 0..<choices.below(10) {
    let name = choices.chance(75) ? String(decoding: randomCase(choices.pick(names), &choices), as: UTF8.self) : ordinaryName(&choices)
    var value: String
    if lower(name) == "connection" {
      // A list of names, some of them others in the list, with odd spacing and empty elements.
      value = (0..<(1 + choices.below(3))).map { _ in
        choices.pick(["", " ", "\t"])
          + String(decoding: randomCase(choices.pick(names + ["close", "keep-alive"]), &choices), as: UTF8.self)
          + choices.pick(["", " ", "\t"])
      }.joined(separator: choices.pick([",", ", ", ",,"]))
    } else {
      // The codec hands values over without leading or trailing whitespace.
      value = trimOWS(String(decoding: fieldValue(&choices), as: UTF8.self))
    }
    headers.append((name, value))
  }
  return headers
}

func fuzzHeaderRewrite(_ choices: inout Choices) {
  let headers = headerList(&choices)
  let requestID = RequestID.pick(choices.chance(50) ? "app-\(choices.byte())" : nil)

  // Request side: the wire form, cut back into lines.
  let wire = rewrite.upstreamHead(
    method: "GET", target: "/fuzz", host: "api.example", appHeaders: headers, authorization: Secret(ourAuthorization),
    requestID: requestID, bodyLength: 0)
  require(wire.suffix(4).elementsEqual([0x0D, 0x0A, 0x0D, 0x0A]), "the head ends with an empty line, and nothing follows a bodiless GET")
  var lines = crlfLines(wire.dropLast(4))
  require(lines.first == "GET /fuzz HTTP/1.1", "the request line comes first: \(lines.first ?? "")")
  require(lines.dropFirst().first == "Host: api.example", "then the upstream's Host")
  lines = Array(lines.dropFirst(2))
  let named = connectionTokens(headers)
  var counts: [String: Int] = [:]
  for line in lines {
    require(!line.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }, "no CR, LF or NUL in \(line.debugDescription)")
    let colon = line.utf8.firstIndex(of: 0x3A)
    require(colon != nil, "every header line has a colon: \(line.debugDescription)")
    let name = lower(String(line[..<colon!]))
    counts[name, default: 0] += 1
    switch name {
    case "authorization": require(line == "Authorization: \(ourAuthorization)", "only our Authorization: \(line)")
    case "x-request-id": require(line == "X-Request-ID: \(requestID)", "only our X-Request-ID: \(line)")
    case "user-agent": require(line == "User-Agent: authproxy/fuzz", "only our User-Agent: \(line)")
    default:
      require(!neverForwarded.contains(name) && !name.hasPrefix("proxy-"), "\(name) is never forwarded: \(headers)")
      require(!named.contains(name), "\(name) is named by Connection: \(headers)")
      require(name != "expect" && name != "content-length", "\(name) is never forwarded on a bodiless GET: \(headers)")
    }
  }
  for name in ["authorization", "x-request-id", "user-agent"] {
    require(counts[name] == 1, "exactly one \(name), not \(counts[name] ?? 0): \(lines)")
  }
  // Everything else passes through, in order, byte for byte.
  let passed = headers.filter { header in
    let name = lower(header.name)
    return !neverForwarded.contains(name) && !name.hasPrefix("proxy-") && !named.contains(name)
      && !["expect", "x-request-id", "user-agent"].contains(name)
  }.map { "\($0.name): \($0.value)" }
  require(Array(lines.prefix(passed.count)) == passed, "app headers pass through unchanged: \(passed) vs \(lines)")

  // Response side: the same headers as an upstream answer.
  let back = rewrite.responseHeaders(from: headers, requestID: requestID)
  var ids = 0
  for (name, value) in back {
    let name = lower(name)
    if name == "x-request-id" {
      ids += 1
      require(value == requestID, "our request id goes back")
    } else {
      require(!neverBack.contains(name) && !named.contains(name), "\(name) is hop-by-hop in a response: \(back)")
    }
  }
  require(ids == 1, "exactly one X-Request-ID back, not \(ids)")
}

// MARK: - Modes 4 and 5: the request policy

let serveConfig: ServeConfig = {
  guard case .success(let upstream) = UpstreamURL.parse("https://api.example.com") else { fatalError("upstream") }
  return ServeConfig(upstream: upstream)
}()
let policy = RequestPolicy(config: serveConfig)
/// The same rules with `--api-prefix /`: only the auth paths and their variants are refused.
let everythingPolicy: RequestPolicy = {
  var config = serveConfig
  config.apiPrefix = "/"
  return RequestPolicy(config: config)
}()
let authPaths = serveConfig.authPaths

/// The rule, written out plainly over the normalized path: an auth path, or one followed by a
/// byte other than a letter, a digit, "-" or "_".
func startsLikeAnAuthPath(_ normalized: String) -> Bool {
  authPaths.map(RequestPolicy.normalize).contains { auth in
    guard normalized.hasPrefix(auth) else { return false }
    guard let next = normalized.utf8.dropFirst(auth.utf8.count).first else { return true }
    return !((0x30...0x39).contains(next) || (0x41...0x5A).contains(next) || (0x61...0x7A).contains(next) || next == 0x2D || next == 0x5F)
  }
}

func fuzzPolicyNormalize(_ choices: inout Choices) {
  let method = choices.pick(["GET", "POST", "HEAD", "DELETE", "CONNECT", "TRACE"])
  let target = String(decoding: choices.rest(), as: UTF8.self)
  let once = RequestPolicy.normalize(target)
  let twice = RequestPolicy.normalize(once)
  require(once == twice, "normalize is idempotent: \(target.debugDescription) -> \(once.debugDescription) -> \(twice.debugDescription)")
  require(once.utf8.first == 0x2F, "a normalized path starts with /")
  // check never traps, and answers as the rules say.
  let verdict = policy.check(method: method, target: target, bodyLength: 0)
  if target.utf8.first != 0x2F || method == "CONNECT" || method == "TRACE" {
    require(verdict?.status == 400, "\(method) \(target.debugDescription) is a bad request")
  } else {
    let path = RequestPolicy.normalize(String(decoding: target.utf8.prefix { $0 != 0x3F }, as: UTF8.self))
    let underPrefix = path == "/api" || path.hasPrefix("/api/")
    let refused = !underPrefix || startsLikeAnAuthPath(path)
    require(
      (verdict?.status == 403) == refused,
      "403 exactly outside /api/ and for the auth paths: \(target.debugDescription) -> \(String(describing: verdict))")
    let anywhere = everythingPolicy.check(method: method, target: target, bodyLength: 0)
    require(
      (anywhere?.status == 403) == startsLikeAnAuthPath(path),
      "with --api-prefix /, 403 exactly for the auth paths: \(target.debugDescription) -> \(String(describing: anywhere))")
  }
}

/// Ways to write an auth path that a router could still take for it.
func fuzzAuthPathVariants(_ choices: inout Choices) {
  let original = choices.pick(authPaths)
  let segments = original.split(separator: "/").map(String.init)
  var target = ""
  for (n, segment) in segments.enumerated() {
    // Empty, "." and "x/.." segments before it.
    for _ in 0..<choices.below(3) {
      target += choices.pick(["/", "/.", "/%2e", "/%2E", "/x/..", "/x/%2e%2e", "/x/..;p", "/.;p", "/x;y/.."])
    }
    // An encoded slash only between segments: the target itself starts with "/".
    target += n > 0 && choices.chance(20) ? "%2f" : "/"
    for c in segment.utf8 {
      switch choices.below(10) {
      case 0: target += "%" + hex(c, upper: choices.chance(50))
      case 1: target += "%25" + hex(c, upper: choices.chance(50))  // encoded twice
      case 2: target += String(Character(UnicodeScalar(c >= 0x61 && c <= 0x7A ? c - 0x20 : c)))
      default: target += String(Character(UnicodeScalar(c)))
      }
    }
    if choices.chance(15) { target += choices.pick([";", ";jsessionid=1", ";a=b;c"]) }
  }
  if choices.chance(30) { target += choices.pick(["/", "//", "/.", "/;x", "/%2e"]) }
  if choices.chance(30) { target += choices.pick(["?", "?a=b", "?next=/auth/login"]) }
  let method = choices.pick(["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"])
  for rules in [policy, everythingPolicy] {
    let verdict = rules.check(method: method, target: target, bodyLength: 0)
    require(
      verdict?.status == 403 && verdict?.code == "forbidden",
      "\(method) \(target) (\(original)) is refused, not \(String(describing: verdict))")
  }
}

func hex(_ b: UInt8, upper: Bool) -> String {
  let digits = Array((upper ? "0123456789ABCDEF" : "0123456789abcdef").utf8)
  return String(decoding: [digits[Int(b >> 4)], digits[Int(b & 15)]], as: UTF8.self)
}

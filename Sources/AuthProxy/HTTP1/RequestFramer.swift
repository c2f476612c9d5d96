/// Limits the framer enforces on every request head and body.
public struct RequestLimits: Sendable, Equatable {
  /// Longest request line (method, target and version, without the line ending); longer -> 414.
  public var maxRequestLine: Int
  /// Largest head, request line and line endings included (also the bound of a trailer section); larger -> 431.
  public var maxHeaderBytes: Int
  /// Most header fields in a head (also the bound of a trailer section); more -> 431.
  public var maxHeaderCount: Int
  /// Largest body: a larger Content-Length or sum of chunk sizes -> 413.
  public var maxBody: Int

  public init(maxBody: Int, maxRequestLine: Int = 8192, maxHeaderBytes: Int = 65536, maxHeaderCount: Int = 100) {
    self.maxBody = maxBody
    self.maxRequestLine = maxRequestLine
    self.maxHeaderBytes = maxHeaderBytes
    self.maxHeaderCount = maxHeaderCount
  }
}

/// Why a request was refused before it reached the worker.
public struct FramingRejection: Sendable, Equatable, Error {
  /// 400, 413, 414 or 431.
  public var status: Int
  /// "bad_request", "body_too_large", "uri_too_long" or "headers_too_large".
  public var code: String
  /// Names the cause; never echoes anything the client sent.
  public var message: String
  /// The X-Request-ID of the rejected request if its header line was complete and sane, else nil.
  public var requestID: String?

  public init(status: Int, code: String, message: String, requestID: String?) {
    self.status = status
    self.code = code
    self.message = message
    self.requestID = requestID
  }
}

/// Streaming, strict HTTP/1.1 request framing check; one per client connection. The proxy's
/// listener cuts requests out of the connection's bytes with it (`RequestHead` then splits an
/// accepted request into its parts), so no byte reaches the worker unchecked.
///
/// It sees the raw bytes of the connection in arrival order, split anywhere, and follows the framing
/// (head, Content-Length body, or chunked body with trailers) so that it always knows where the next
/// pipelined request head starts, and rejects the first bad request; the verdict does not depend on
/// how the bytes were split.
///
/// Beyond RFC 9112 it refuses shapes that HTTP implementations frame differently (it was first
/// written to sit in front of evhttp 2.1, whose choices are the examples): a body on HEAD (read as
/// the next request), a tab before the Transfer-Encoding value (evhttp strips only spaces there),
/// targets starting with `//` (parsed as an authority), Content-Length, Transfer-Encoding, Host or
/// X-Request-ID in trailers (merged into the headers), chunk extensions, a Content-Length written
/// as a list, even of equal values, and empty lines before a request line, between pipelined
/// requests too. And, per RFC 9112 §7.4, a TE field naming the chunked coding (a smuggling probe).
public struct RequestFramer: Sendable {
  /// How many complete, accepted request heads have been seen so far.
  public private(set) var headsAccepted: Int = 0

  /// A request head (or trailer section) has started and is not complete yet: the time a
  /// client takes here is bounded by the header timeout.
  public var isReadingHead: Bool { countingHead }

  /// The current request's line was read and accepted (its head or body is still arriving, or
  /// was rejected after the line): the listener can name its method and path in the access log.
  public private(set) var requestLineAccepted = false

  private let limits: RequestLimits
  private var rejection: FramingRejection?
  private var state: State = .lineStart
  /// What the LF awaited in `.expectLF` completes.
  private var pendingLine: LineKind = .blank

  // Head accounting (also used for the trailer section).
  private var countingHead = false
  private var inRequestLine = false
  private var inTrailers = false
  private var headBytes = 0
  private var lineLength = 0
  private var fieldCount = 0

  // Request line.
  private var methodBits: UInt64 = 0
  private var methodLength = 0
  private var isHEAD = false
  private var isHTTP10 = false
  private var targetJustStarted = false
  private var versionIndex = 0

  // Current field line.
  private var name = PackedName()
  private var field: Field = .other
  private var valueStarted = false
  private var leadingTab = false
  private var pendingOWS = false

  // Content-Length.
  private var hasContentLength = false
  private var contentLength = 0
  private var contentLengthValue = 0
  private var contentLengthDigits = 0

  // Transfer-Encoding.
  private var hasTransferEncoding = false
  private var transferEncodingMatched = 0

  // TE: how much of "chunked" the current list element matched so far; -1 when it cannot.
  private var teMatched = 0

  // X-Request-ID (the first one of the head counts, as with ClientRequest.header).
  private var requestIDSeen = false
  private var requestIDInsane = false
  private var requestIDSane = false
  private var requestIDBytes: [UInt8] = []

  // Bodies.
  private var remaining = 0
  private var chunkSize = 0
  private var chunkDigits = 0
  private var chunkTotal = 0

  /// Most hex digits in a chunk size.
  static let maxChunkSizeDigits = 16

  public init(limits: RequestLimits) {
    // Negative limits mean "nothing allowed"; clamping keeps the arithmetic below overflow-free.
    self.limits = RequestLimits(
      maxBody: max(0, limits.maxBody), maxRequestLine: max(0, limits.maxRequestLine),
      maxHeaderBytes: max(0, limits.maxHeaderBytes), maxHeaderCount: max(0, limits.maxHeaderCount))
    requestIDBytes.reserveCapacity(128)
  }

  /// Feeds the next bytes received on the connection. Returns nil while everything is acceptable,
  /// or the rejection of the first bad request. After a rejection, further calls return the same rejection.
  public mutating func consume(_ bytes: UnsafeRawBufferPointer) -> FramingRejection? {
    run(bytes, stopAtRequestEnd: false).rejection
  }

  /// Like `consume`, but stops right after the end of a request: `consumed` bytes were taken
  /// (all of them when no request ended in `bytes`). The listener uses it to cut requests out
  /// of its input buffer.
  public mutating func consumeRequest(_ bytes: UnsafeRawBufferPointer) -> (consumed: Int, rejection: FramingRejection?) {
    run(bytes, stopAtRequestEnd: true)
  }

  /// Requests seen whole (head and body), in arrival order.
  public private(set) var requestsCompleted = 0

  /// The current request's head is complete and its body is still arriving.
  public var isReadingBody: Bool { headsAccepted > requestsCompleted && state != .rejected }

  private mutating func run(_ bytes: UnsafeRawBufferPointer, stopAtRequestEnd: Bool) -> (consumed: Int, rejection: FramingRejection?) {
    if state == .rejected, let rejection { return (0, rejection) }
    let count = bytes.count
    let completedBefore = requestsCompleted
    var i = 0
    while i < count {
      if stopAtRequestEnd && requestsCompleted != completedBefore { return (i, nil) }
      switch state {
      case .body, .chunkData:
        let take = min(remaining, count - i)
        i += take
        remaining -= take
        if remaining == 0 {
          if state == .body { finishRequest() } else { state = .chunkDataEnd }
        }
        continue
      case .fieldValue where field == .other:
        // Bulk scan of a value nobody interprets; stops before the byte that would cross the limit.
        let end = i + min(count - i, max(0, limits.maxHeaderBytes - headBytes))
        var j = i
        while j < end {
          let c = bytes[j]
          guard c >= 0x20 ? c != 0x7F : c == HTTPBytes.htab else { break }
          j += 1
        }
        if j > i {
          headBytes += j - i
          i = j
          continue
        }
      case .fieldName:
        let end = i + min(count - i, max(0, limits.maxHeaderBytes - headBytes))
        var j = i
        while j < end {
          let c = bytes[j]
          guard HTTPBytes.isTchar(c) else { break }
          name.append(HTTPBytes.lowercased(c))
          j += 1
        }
        if j > i {
          headBytes += j - i
          i = j
          continue
        }
      case .target where !targetJustStarted:
        let allowance = min(limits.maxHeaderBytes - headBytes, limits.maxRequestLine - lineLength)
        let end = i + min(count - i, max(0, allowance))
        var j = i
        while j < end {
          let c = bytes[j]
          guard c > HTTPBytes.sp && c < 0x7F && c != Self.hash else { break }
          j += 1
        }
        if j > i {
          headBytes += j - i
          lineLength += j - i
          i = j
          continue
        }
      default:
        break
      }
      let b = bytes[i]
      i += 1
      if let failure = step(b) { return (i, reject(failure)) }
    }
    return (count, nil)
  }

  // MARK: - Byte steps

  private mutating func step(_ b: UInt8) -> Failure? {
    if countingHead {
      headBytes += 1
      if inRequestLine && b != HTTPBytes.cr && b != HTTPBytes.lf {
        lineLength += 1
        if lineLength > limits.maxRequestLine { return .requestLineTooLong }
      }
      if headBytes > limits.maxHeaderBytes { return inTrailers ? .trailersTooLarge : .headersTooLarge }
    }
    switch state {
    case .lineStart:
      switch b {
      case HTTPBytes.cr:
        // Judged at the LF, so that a bare CR is reported as such.
        pendingLine = .blank
        state = .expectLF
        return nil
      case HTTPBytes.lf:
        return .emptyLineBeforeRequestLine
      default:
        beginRequest()
        return step(b)
      }

    case .method:
      if b == HTTPBytes.sp { return finishMethod() }
      guard HTTPBytes.isTchar(b) else { return .malformedRequestLine }
      guard methodLength < 7 else { return .methodNotSupported }
      methodBits |= UInt64(b) << UInt64(methodLength * 8)
      methodLength += 1
      return nil

    case .targetStart:
      if b == Self.slash {
        targetJustStarted = true
        state = .target
        return nil
      }
      if b <= HTTPBytes.sp || b >= 0x7F { return .malformedRequestLine }
      return .notOriginForm

    case .target:
      if b == HTTPBytes.sp {
        versionIndex = 0
        state = .version
        return nil
      }
      if targetJustStarted {
        targetJustStarted = false
        if b == Self.slash { return .notOriginForm }
      }
      if b == Self.hash { return .fragmentInTarget }
      if b <= HTTPBytes.sp || b >= 0x7F { return .invalidTargetByte }
      return nil

    case .version:
      switch versionIndex {
      case 0..<7:
        guard b == Self.versionPrefixByte(versionIndex) else { return .unsupportedVersion }
        versionIndex += 1
        return nil
      case 7:
        guard b == 0x30 || b == 0x31 else { return .unsupportedVersion }
        isHTTP10 = b == 0x30
        versionIndex = 8
        return nil
      default:
        if b == HTTPBytes.cr {
          pendingLine = .requestLine
          state = .expectLF
          return nil
        }
        if b == HTTPBytes.lf { return finishRequestLine() }
        return .unsupportedVersion
      }

    case .fieldStart:
      switch b {
      case HTTPBytes.cr:
        pendingLine = .sectionEnd
        state = .expectLF
        return nil
      case HTTPBytes.lf:
        return finishSection()
      case HTTPBytes.sp, HTTPBytes.htab:
        return .obsoleteLineFolding
      case HTTPBytes.colon:
        return .emptyFieldName
      default:
        guard HTTPBytes.isTchar(b) else { return .invalidFieldName }
        fieldCount += 1
        if fieldCount > limits.maxHeaderCount { return inTrailers ? .tooManyTrailers : .tooManyHeaders }
        name = PackedName()
        name.append(HTTPBytes.lowercased(b))
        state = .fieldName
        return nil
      }

    case .fieldName:
      if HTTPBytes.isTchar(b) {
        name.append(HTTPBytes.lowercased(b))
        return nil
      }
      switch b {
      case HTTPBytes.colon: return beginValue()
      case HTTPBytes.sp, HTTPBytes.htab: return .whitespaceBeforeColon
      case HTTPBytes.cr, HTTPBytes.lf: return .missingColon
      default: return .invalidFieldName
      }

    case .fieldValue:
      return valueByte(b)

    case .expectLF:
      guard b == HTTPBytes.lf else { return .bareCR }
      switch pendingLine {
      case .blank:
        return .emptyLineBeforeRequestLine
      case .requestLine:
        return finishRequestLine()
      case .field:
        return finishField()
      case .sectionEnd:
        return finishSection()
      case .chunkSizeLine:
        return finishChunkSizeLine()
      case .chunkData:
        startChunkSizeLine()
        return nil
      }

    case .chunkSize:
      if let digit = HTTPBytes.hexValue(b) {
        guard chunkDigits < Self.maxChunkSizeDigits, chunkSize <= (Int.max - digit) >> 4 else {
          return .chunkSizeOutOfRange
        }
        chunkDigits += 1
        chunkSize = chunkSize << 4 | digit
        // The sum only grows with more digits: too large is known now.
        if chunkSize > limits.maxBody - chunkTotal { return .bodyTooLarge }
        return nil
      }
      guard chunkDigits > 0 else { return .invalidChunkSize }
      switch b {
      case HTTPBytes.semicolon:
        return .chunkExtension
      case HTTPBytes.cr:
        pendingLine = .chunkSizeLine
        state = .expectLF
        return nil
      case HTTPBytes.lf:
        return finishChunkSizeLine()
      default:
        return .invalidChunkSize
      }

    case .chunkDataEnd:
      switch b {
      case HTTPBytes.cr:
        pendingLine = .chunkData
        state = .expectLF
        return nil
      case HTTPBytes.lf:
        startChunkSizeLine()
        return nil
      default:
        return .missingChunkDataCRLF
      }

    case .body, .chunkData, .rejected:
      // Handled in consume; never reached with a byte.
      return nil
    }
  }

  private mutating func valueByte(_ b: UInt8) -> Failure? {
    switch b {
    case HTTPBytes.cr:
      pendingLine = .field
      state = .expectLF
      return nil
    case HTTPBytes.lf:
      return finishField()
    case HTTPBytes.sp, HTTPBytes.htab:
      if valueStarted {
        pendingOWS = true
      } else if b == HTTPBytes.htab {
        leadingTab = true
      }
      return nil
    case 0x21...0x7E, 0x80...0xFF:
      break
    default:
      return .invalidFieldValue
    }
    let afterOWS = pendingOWS
    let first = !valueStarted
    pendingOWS = false
    valueStarted = true
    switch field {
    case .other:
      return nil
    case .contentLength:
      if b >= 0x30 && b <= 0x39 {
        if contentLengthDigits > 0 && afterOWS { return .invalidContentLength }
        let digit = Int(b &- 0x30)
        guard contentLengthValue <= (Int.max - digit) / 10 else { return .contentLengthOutOfRange }
        contentLengthValue = contentLengthValue * 10 + digit
        contentLengthDigits += 1
        return nil
      }
      // evhttp reads the value with strtoll, so it refuses a list even of equal values.
      if b == HTTPBytes.comma { return .contentLengthList }
      return .invalidContentLength
    case .transferEncoding:
      if first && leadingTab { return .tabBeforeTransferEncoding }
      if transferEncodingMatched < 7 && !afterOWS
        && HTTPBytes.lowercased(b) == Self.chunkedByte(transferEncodingMatched)
      {
        transferEncodingMatched += 1
        return nil
      }
      return .unsupportedTransferEncoding
    case .te:
      // Elements are `coding *(OWS ";" OWS parameter)`, separated by commas (OWS around them).
      if b == HTTPBytes.comma || b == HTTPBytes.semicolon {
        if teMatched == 7 { return .chunkedInTE }
        teMatched = b == HTTPBytes.comma ? 0 : -1
      } else if afterOWS && teMatched != 0 {
        teMatched = -1
      } else if teMatched >= 0 && teMatched < 7 && HTTPBytes.lowercased(b) == Self.chunkedByte(teMatched) {
        teMatched += 1
      } else {
        teMatched = -1
      }
      return nil
    case .requestID:
      if requestIDInsane { return nil }
      if afterOWS || leadingTab || requestIDBytes.count >= 128 || !Self.isRequestIDByte(b) {
        requestIDInsane = true
      } else {
        requestIDBytes.append(b)
      }
      return nil
    }
  }

  // MARK: - Transitions

  private mutating func beginRequest() {
    state = .method
    countingHead = true
    inRequestLine = true
    inTrailers = false
    headBytes = 0
    lineLength = 0
    fieldCount = 0
    methodBits = 0
    methodLength = 0
    isHEAD = false
    isHTTP10 = false
    hasContentLength = false
    contentLength = 0
    hasTransferEncoding = false
    requestIDSeen = false
    requestIDInsane = false
    requestIDSane = false
    requestIDBytes.removeAll(keepingCapacity: true)
  }

  private mutating func finishMethod() -> Failure? {
    guard methodLength > 0 else { return .malformedRequestLine }
    switch methodBits {
    case Self.methodGET, Self.methodPOST, Self.methodPUT, Self.methodDELETE, Self.methodPATCH, Self.methodOPTIONS:
      break
    case Self.methodHEAD:
      isHEAD = true
    default:
      return .methodNotSupported
    }
    state = .targetStart
    return nil
  }

  private mutating func finishRequestLine() -> Failure? {
    inRequestLine = false
    requestLineAccepted = true
    state = .fieldStart
    return nil
  }

  private mutating func beginValue() -> Failure? {
    valueStarted = false
    leadingTab = false
    pendingOWS = false
    field = .other
    if name == Self.nameContentLength {
      if inTrailers { return .forbiddenTrailerField }
      field = .contentLength
      contentLengthValue = 0
      contentLengthDigits = 0
    } else if name == Self.nameTransferEncoding {
      if inTrailers { return .forbiddenTrailerField }
      if hasTransferEncoding { return .multipleTransferEncodings }
      hasTransferEncoding = true
      field = .transferEncoding
      transferEncodingMatched = 0
    } else if name == Self.nameRequestID {
      if inTrailers { return .forbiddenTrailerField }
      if !requestIDSeen {
        requestIDSeen = true
        field = .requestID
      }
    } else if name == Self.nameTE {
      field = .te
      teMatched = 0
    } else if inTrailers && name == Self.nameHost {
      return .forbiddenTrailerField
    }
    state = .fieldValue
    return nil
  }

  private mutating func finishField() -> Failure? {
    switch field {
    case .other:
      break
    case .contentLength:
      guard contentLengthDigits > 0 else { return .invalidContentLength }
      // Several Content-Length lines are accepted only with equal values (evhttp uses the first).
      if hasContentLength && contentLength != contentLengthValue { return .conflictingContentLengths }
      hasContentLength = true
      contentLength = contentLengthValue
    case .transferEncoding:
      guard transferEncodingMatched == 7 else { return .unsupportedTransferEncoding }
    case .te:
      if teMatched == 7 { return .chunkedInTE }
    case .requestID:
      requestIDSane = !requestIDInsane && !requestIDBytes.isEmpty
    }
    state = .fieldStart
    return nil
  }

  /// The empty line ending a head or a trailer section.
  private mutating func finishSection() -> Failure? {
    countingHead = false
    if inTrailers {
      finishRequest()
      return nil
    }
    if hasTransferEncoding && hasContentLength { return .bothContentLengthAndTransferEncoding }
    if hasTransferEncoding && isHTTP10 { return .transferEncodingOnHTTP10 }
    if isHEAD && (hasTransferEncoding || contentLength > 0) { return .bodyOnHEAD }
    if contentLength > limits.maxBody { return .bodyTooLarge }
    headsAccepted += 1
    if hasTransferEncoding {
      chunkTotal = 0
      startChunkSizeLine()
    } else if contentLength > 0 {
      remaining = contentLength
      state = .body
    } else {
      finishRequest()
    }
    return nil
  }

  private mutating func startChunkSizeLine() {
    chunkSize = 0
    chunkDigits = 0
    state = .chunkSize
  }

  private mutating func finishChunkSizeLine() -> Failure? {
    chunkTotal += chunkSize
    if chunkSize == 0 {
      inTrailers = true
      countingHead = true
      headBytes = 0
      fieldCount = 0
      state = .fieldStart
    } else {
      remaining = chunkSize
      state = .chunkData
    }
    return nil
  }

  private mutating func finishRequest() {
    requestsCompleted += 1
    requestLineAccepted = false
    state = .lineStart
    countingHead = false
    inTrailers = false
    requestIDSane = false
  }

  private mutating func reject(_ failure: Failure) -> FramingRejection {
    let requestID = requestIDSane ? String(decoding: requestIDBytes, as: UTF8.self) : nil
    let made = failure.rejection(limits: limits, requestID: requestID)
    rejection = made
    state = .rejected
    return made
  }

  // MARK: - Types

  private enum State: UInt8 {
    case lineStart, method, targetStart, target, version
    case fieldStart, fieldName, fieldValue, expectLF
    case body
    case chunkSize, chunkData, chunkDataEnd
    case rejected
  }

  private enum LineKind: UInt8 {
    case blank, requestLine, field, sectionEnd, chunkSizeLine, chunkData
  }

  private enum Field: UInt8 {
    case other, contentLength, transferEncoding, te, requestID
  }

  /// A lower-cased field name, its first 24 bytes packed for cheap comparison.
  struct PackedName: Equatable, Sendable {
    var w0: UInt64 = 0
    var w1: UInt64 = 0
    var w2: UInt64 = 0
    var length = 0

    init() {}

    init(w0: UInt64, w1: UInt64, w2: UInt64, length: Int) {
      self.w0 = w0
      self.w1 = w1
      self.w2 = w2
      self.length = length
    }

    init(_ text: String) {
      for b in text.utf8 { append(b) }
    }

    @inline(__always)
    mutating func append(_ b: UInt8) {
      if length < 24 {
        let v = UInt64(b) << UInt64((length & 7) << 3)
        switch length >> 3 {
        case 0: w0 |= v
        case 1: w1 |= v
        default: w2 |= v
        }
      }
      length += 1
    }
  }

  private enum Failure: UInt8 {
    case requestLineTooLong, headersTooLarge, tooManyHeaders, trailersTooLarge, tooManyTrailers
    case bodyTooLarge
    case malformedRequestLine, methodNotSupported, notOriginForm, fragmentInTarget, invalidTargetByte
    case unsupportedVersion, bareCR, emptyLineBeforeRequestLine
    case obsoleteLineFolding, emptyFieldName, invalidFieldName, whitespaceBeforeColon, missingColon
    case invalidFieldValue
    case invalidContentLength, contentLengthList, contentLengthOutOfRange, conflictingContentLengths
    case unsupportedTransferEncoding, multipleTransferEncodings, tabBeforeTransferEncoding
    case transferEncodingOnHTTP10, bothContentLengthAndTransferEncoding, bodyOnHEAD
    case invalidChunkSize, chunkSizeOutOfRange, chunkExtension
    case missingChunkDataCRLF, forbiddenTrailerField, chunkedInTE

    func rejection(limits: RequestLimits, requestID: String?) -> FramingRejection {
      let status: Int
      let code: String
      let message: String
      switch self {
      case .requestLineTooLong:
        (status, code, message) = (414, "uri_too_long", "request line longer than \(limits.maxRequestLine) bytes")
      case .headersTooLarge:
        (status, code, message) = (431, "headers_too_large", "request head larger than \(limits.maxHeaderBytes) bytes")
      case .tooManyHeaders:
        (status, code, message) = (431, "headers_too_large", "more than \(limits.maxHeaderCount) header fields")
      case .trailersTooLarge:
        (status, code, message) = (431, "headers_too_large", "trailer section larger than \(limits.maxHeaderBytes) bytes")
      case .tooManyTrailers:
        (status, code, message) = (431, "headers_too_large", "more than \(limits.maxHeaderCount) trailer fields")
      case .bodyTooLarge:
        (status, code, message) = (413, "body_too_large", "request body larger than \(limits.maxBody) bytes")
      default:
        status = 400
        code = "bad_request"
        message = badRequestMessage
      }
      return FramingRejection(status: status, code: code, message: message, requestID: requestID)
    }

    private var badRequestMessage: String {
      switch self {
      case .malformedRequestLine: return "malformed request line"
      case .methodNotSupported: return "request method is not supported"
      case .notOriginForm: return "only origin-form targets are proxied"
      case .fragmentInTarget: return "fragment in request target"
      case .invalidTargetByte: return "invalid byte in request target"
      case .unsupportedVersion: return "unsupported or malformed HTTP version (HTTP/1.0 or HTTP/1.1 only)"
      case .bareCR: return "CR not followed by LF"
      case .emptyLineBeforeRequestLine: return "empty line before the request line"
      case .obsoleteLineFolding: return "obsolete line folding in header section"
      case .emptyFieldName: return "empty header field name"
      case .invalidFieldName: return "invalid character in header field name"
      case .whitespaceBeforeColon: return "whitespace between header field name and colon"
      case .missingColon: return "header line without colon"
      case .invalidFieldValue: return "invalid character in header field value"
      case .invalidContentLength: return "invalid Content-Length"
      case .contentLengthList: return "Content-Length with a list of values is not supported"
      case .contentLengthOutOfRange: return "Content-Length out of range"
      case .conflictingContentLengths: return "conflicting Content-Length values"
      case .unsupportedTransferEncoding: return "unsupported Transfer-Encoding (only chunked is accepted)"
      case .multipleTransferEncodings: return "more than one Transfer-Encoding header"
      case .tabBeforeTransferEncoding: return "tab before Transfer-Encoding value"
      case .transferEncodingOnHTTP10: return "Transfer-Encoding in an HTTP/1.0 request"
      case .bothContentLengthAndTransferEncoding: return "both Content-Length and Transfer-Encoding"
      case .bodyOnHEAD: return "HEAD request with a body"
      case .invalidChunkSize: return "invalid chunk size"
      case .chunkSizeOutOfRange: return "chunk size out of range"
      case .chunkExtension: return "chunk extensions are not supported"
      case .missingChunkDataCRLF: return "chunk data not followed by CRLF"
      case .forbiddenTrailerField: return "framing or routing field in trailer section"
      case .chunkedInTE: return "TE names the chunked transfer coding"
      default: return "bad request"
      }
    }
  }

  // MARK: - Bytes (and HTTPBytes)

  private static let slash: UInt8 = 0x2F
  private static let hash: UInt8 = 0x23

  // Lower-case names packed as literals (no lazy initialisation on the hot path; checked by the tests).
  static let nameContentLength = PackedName(w0: 0x2D74_6E65_746E_6F63, w1: 0x6874_676E_656C, w2: 0, length: 14)
  static let nameTransferEncoding = PackedName(
    w0: 0x7265_6673_6E61_7274, w1: 0x6E69_646F_636E_652D, w2: 0x67, length: 17)
  static let nameRequestID = PackedName(w0: 0x7365_7571_6572_2D78, w1: 0x6469_2D74, w2: 0, length: 12)
  static let nameHost = PackedName(w0: 0x7473_6F68, w1: 0, w2: 0, length: 4)
  static let nameTE = PackedName(w0: 0x6574, w1: 0, w2: 0, length: 2)

  // Methods packed little-endian, first byte lowest (checked by the tests against `packMethod`).
  static let methodGET: UInt64 = 0x54_45_47
  static let methodHEAD: UInt64 = 0x44_41_45_48
  static let methodPOST: UInt64 = 0x54_53_4F_50
  static let methodPUT: UInt64 = 0x54_55_50
  static let methodDELETE: UInt64 = 0x45_54_45_4C_45_44
  static let methodPATCH: UInt64 = 0x48_43_54_41_50
  static let methodOPTIONS: UInt64 = 0x53_4E_4F_49_54_50_4F

  static func packMethod(_ text: String) -> UInt64 {
    var bits: UInt64 = 0
    for (i, b) in text.utf8.prefix(8).enumerated() { bits |= UInt64(b) << UInt64(i * 8) }
    return bits
  }

  /// `[A-Za-z0-9._:-]`.
  @inline(__always)
  static func isRequestIDByte(_ b: UInt8) -> Bool {
    if b < 64 { return (0x07FF_6000_0000_0000 as UInt64) >> UInt64(b) & 1 == 1 }
    if b < 128 { return (0x07FF_FFFE_87FF_FFFE as UInt64) >> UInt64(b &- 64) & 1 == 1 }
    return false
  }

  /// "HTTP/1." byte by byte.
  private static func versionPrefixByte(_ i: Int) -> UInt8 {
    switch i {
    case 0: return 0x48  // H
    case 1, 2: return 0x54  // T
    case 3: return 0x50  // P
    case 4: return 0x2F  // /
    case 5: return 0x31  // 1
    default: return 0x2E  // .
    }
  }

  /// "chunked" byte by byte.
  private static func chunkedByte(_ i: Int) -> UInt8 {
    switch i {
    case 0: return 0x63  // c
    case 1: return 0x68  // h
    case 2: return 0x75  // u
    case 3: return 0x6E  // n
    case 4: return 0x6B  // k
    case 5: return 0x65  // e
    default: return 0x64  // d
    }
  }
}

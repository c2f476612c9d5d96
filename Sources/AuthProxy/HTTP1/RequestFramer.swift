/// Streaming, strict HTTP/1.1 request framing (RFC 9112); one per client connection. The
/// proxy's listener cuts requests out of the connection's bytes with it (`RequestHead` then
/// splits an accepted request into its parts), so no byte reaches the worker unchecked.
///
/// It sees the raw bytes of the connection in arrival order, split anywhere, and follows the
/// framing (head, Content-Length body, or chunked body with trailers) so that it always knows
/// where the next pipelined request head starts, and rejects the first bad request; the verdict
/// does not depend on how the bytes were split.
///
/// Faithful where the RFCs allow: any token method but CONNECT and TRACE, field values as bytes
/// (obs-text too), chunk extensions (checked, then dropped: the body is re-framed), and up to
/// `maxEmptyLines` empty lines before a request line (§2.2). Strict where it protects: it refuses
/// every shape that HTTP implementations frame differently — both Content-Length and
/// Transfer-Encoding, differing or listed or signed lengths, a Transfer-Encoding other than
/// `chunked` or a tab before it, obs-fold, whitespace before a colon, control bytes, a bare CR,
/// a body on HEAD, targets starting with `//` (read as an authority), framing and routing fields
/// in trailers, and a TE field naming the chunked coding (§7.4: a smuggling probe).
///
/// The stepping is spread over `RequestFramer+Steps` (one byte at a time), `+Fields` (field
/// values and section ends) and `+Failure` (what the client is told); their state is here.
public struct RequestFramer: Sendable {
  /// How many complete, accepted request heads have been seen so far.
  public internal(set) var headsAccepted: Int = 0

  /// A request head (or trailer section) has started and is not complete yet: the time a
  /// client takes here is bounded by the header timeout.
  public var isReadingHead: Bool { countingHead }

  /// The current request's line was read and accepted (its head or body is still arriving, or
  /// was rejected after the line): the listener can name its method and path in the access log.
  public internal(set) var requestLineAccepted = false

  /// Requests seen whole (head and body), in arrival order.
  public internal(set) var requestsCompleted = 0

  /// The current request's head is complete and its body is still arriving.
  public var isReadingBody: Bool { headsAccepted > requestsCompleted && state != .rejected }

  /// Most empty lines accepted before a request line (RFC 9112 §2.2 asks for at least one; a
  /// few more cost nothing, an endless stream of them would hold the connection).
  static let maxEmptyLines = 8

  // The state below belongs to the RequestFramer files only (internal for their extensions).

  let limits: RequestLimits
  var rejection: FramingRejection?
  var state: State = .lineStart
  /// What the LF awaited in `.expectLF` completes.
  var pendingLine: LineKind = .blank
  var emptyLines = 0

  // Head accounting (also used for the trailer section).
  var countingHead = false
  var inRequestLine = false
  var inTrailers = false
  var headBytes = 0
  var lineLength = 0
  var fieldCount = 0

  // Request line.
  var methodBits: UInt64 = 0
  var methodLength = 0
  var isHEAD = false
  var isHTTP10 = false
  var targetJustStarted = false
  var versionIndex = 0

  // Current field line.
  var name = PackedName()
  var field: Field = .other
  var valueStarted = false
  var leadingTab = false
  var pendingOWS = false

  // Content-Length.
  var hasContentLength = false
  var contentLength = 0
  var contentLengthValue = 0
  var contentLengthDigits = 0

  // Transfer-Encoding.
  var hasTransferEncoding = false
  var transferEncodingMatched = 0

  // TE: how much of "chunked" the current list element matched so far; -1 when it cannot.
  var teMatched = 0

  // X-Request-ID (the first one of the head counts, as with ClientRequest.header).
  var requestIDSeen = false
  var requestIDInsane = false
  var requestIDSane = false
  var requestIDBytes: [UInt8] = []

  // Bodies.
  var remaining = 0
  var chunkLine = ChunkSizeLine()
  var chunkLineBytes = 0
  var chunkTotal = 0

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
        while j < end && HTTPBytes.isFieldByte(bytes[j]) { j += 1 }
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
          guard c > HTTPBytes.sp && c < 0x7F && c != HTTPBytes.hash else { break }
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

  mutating func reject(_ failure: Failure) -> FramingRejection {
    let requestID = requestIDSane ? String(decoding: requestIDBytes, as: UTF8.self) : nil
    let made = failure.rejection(limits: limits, requestID: requestID)
    rejection = made
    state = .rejected
    return made
  }

  // MARK: - Types

  enum State: UInt8 {
    case lineStart, method, targetStart, target, version
    case fieldStart, fieldName, fieldValue, expectLF
    case body
    case chunkSize, chunkData, chunkDataEnd
    case rejected
  }

  enum LineKind: UInt8 {
    case blank, requestLine, field, sectionEnd, chunkSizeLine, chunkData
  }

  enum Field: UInt8 {
    case other, contentLength, transferEncoding, te, requestID
  }

  /// `[A-Za-z0-9._:-]`.
  @inline(__always)
  static func isRequestIDByte(_ b: UInt8) -> Bool {
    if b < 64 { return (0x07FF_6000_0000_0000 as UInt64) >> UInt64(b) & 1 == 1 }
    if b < 128 { return (0x07FF_FFFE_87FF_FFFE as UInt64) >> UInt64(b &- 64) & 1 == 1 }
    return false
  }

  /// "HTTP/1." byte by byte.
  static func versionPrefixByte(_ i: Int) -> UInt8 {
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
  static func chunkedByte(_ i: Int) -> UInt8 {
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

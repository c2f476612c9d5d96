/// Streaming, strict HTTP/1.1 response parser for the upstream client; one per request/response exchange.
///
/// It is fed the bytes received on the upstream connection (after TLS) in arrival order, split anywhere, and
/// reports the final response head, the body (de-chunked, as slices of the input: never copied) and the end of
/// the response. Events and errors do not depend on how the input was split. What it accepts (RFC 9112):
///
/// - A status line `HTTP/1.1 SSS reason` or `HTTP/1.0 SSS reason`: exactly three digits (100 to 999), the reason
///   may be empty or absent. Then header lines `name: value` (a token name, no whitespace before the colon, no
///   obs-fold) and an empty line. Lines end with CRLF or a bare LF. Values are trimmed of spaces and tabs and
///   may hold no control character but HTAB (neither may the reason phrase). Names and values are kept as
///   bytes (`HTTPFields`), and passed on as received.
/// - Interim 1xx responses, which are checked and skipped; 101 is refused (the proxy never asks to upgrade).
/// - Bodies framed as in §6.3: none for HEAD, 204 and 304; chunked when the last transfer coding is `chunked`;
///   until close for any other Transfer-Encoding (refused in an HTTP/1.0 response: faulty framing, §6.1);
///   else Content-Length (digits only; repeated fields or lists only with equal values; at most 2^62); else
///   until close. Transfer-Encoding beats Content-Length. Content-Length fields are interpreted, never kept
///   in the head's fields: the head reports the one length (nil when a transfer coding frames the body), and
///   whoever passes the answer on writes its own framing, so a desynchronising length never goes further.
/// - Chunk-size lines as `ChunkSizeLine` reads them (the request framer's reader: sizes of at most 16 hex
///   digits, chunk extensions checked and ignored) and trailer fields (checked, dropped).
///
/// Each head, each trailer section and each chunk-size line is at most `maxHeadBytes` bytes, line endings
/// included; a head or trailer section has at most `maxHeaderCount` fields.
struct ResponseParser: Sendable {
  enum Event {
    /// The final (non-1xx) response head. Header names and values as received (values with surrounding
    /// spaces/tabs trimmed), in order, but Content-Length; `contentLength` is its one value when it frames
    /// the body, or describes the body a HEAD or 304 stands for (nil with a Transfer-Encoding, or none).
    case head(status: Int, headers: HTTPFields, contentLength: Int?)
    /// Body bytes (already de-chunked), a slice of the buffer passed to `consume`.
    case body(UnsafeRawBufferPointer)
    /// The response is complete. `reusable`: the connection may carry another request.
    case end(reusable: Bool)
  }

  /// True once any byte of a response (including 1xx) was consumed: distinguishes "the upstream closed
  /// without answering" from "it closed mid-answer".
  private(set) var hasStarted = false

  /// True once .end was delivered.
  var isComplete: Bool { state == .done }

  // The state below belongs to the ResponseParser files only (internal for `+Lines`).

  let isHEAD: Bool
  let maxHeadBytes: Int
  let maxHeaderCount: Int

  var state: State = .statusLine
  var failure: ResponseParseError?
  /// The start of a line that arrived in an earlier `consume` call (its LF has not arrived yet).
  var partialLine: [UInt8] = []
  /// Bytes of the current head, trailer section or chunk-size line, line endings included.
  var sectionBytes = 0
  var fieldCount = 0

  // The current head.
  var status = 0
  var isHTTP10 = false
  var headers = HTTPFields()
  var contentLength: Int?
  var hasTransferEncoding = false
  var lastCodingIsChunked = false
  var connectionClose = false
  var connectionKeepAlive = false
  var reusable = false

  /// Bytes left in the Content-Length body or in the current chunk.
  var remaining = 0

  init(isHEAD: Bool, maxHeadBytes: Int = 65536, maxHeaderCount: Int = 200) {
    self.isHEAD = isHEAD
    self.maxHeadBytes = max(0, maxHeadBytes)
    self.maxHeaderCount = max(0, maxHeaderCount)
  }

  /// Consumes bytes; calls `deliver` for each event in order. If `deliver` returns false after
  /// a `.body` event, parsing stops right after that slice (backpressure): the return value is the
  /// number of bytes of `bytes` consumed, and the caller calls `consume` again later with the rest.
  /// Returns bytes.count when everything was consumed. After `.end`, any further bytes are NOT consumed
  /// (return the count up to the end of this response; extra bytes mean the upstream sent more than one
  /// response: the caller treats the connection as unusable).
  /// Throws ResponseParseError on malformed input (and the same error on every later call).
  ///
  /// A `.body` slice that completes a Content-Length body is followed by `.end` even when `deliver` returned false.
  mutating func consume(_ bytes: UnsafeRawBufferPointer, _ deliver: (Event) -> Bool) throws(ResponseParseError) -> Int {
    if let failure { throw failure }
    do {
      return try run(bytes, deliver)
    } catch {
      failure = error
      state = .failed
      throw error
    }
  }

  /// The upstream closed the connection. Returns true if that completes the response (a
  /// close-delimited body: then it also delivered `.end(reusable: false)` through `deliver`), false if the response was cut
  /// (head incomplete, or Content-Length / chunked body incomplete). True without a new event if `.end` was delivered before.
  mutating func finishAtEOF(_ deliver: (Event) -> Bool) -> Bool {
    switch state {
    case .untilClose:
      finish(deliver)
      return true
    case .done:
      return true
    default:
      return false
    }
  }

  // MARK: - Bytes

  private mutating func run(_ bytes: UnsafeRawBufferPointer, _ deliver: (Event) -> Bool) throws(ResponseParseError) -> Int {
    let count = bytes.count
    if count > 0 && state != .done { hasStarted = true }
    var i = 0
    while i < count {
      switch state {
      case .statusLine, .fieldLine, .chunkSizeLine, .trailerLine:
        let lineEnd = bytes[i...].firstIndex(of: HTTPBytes.lf)
        // The LF is counted also before it arrives: a line fails as soon as it cannot fit, whatever the split.
        let lineBytes = partialLine.count + (lineEnd ?? count) - i + 1
        guard sectionBytes + lineBytes <= maxHeadBytes else { throw limitError }
        guard let lineEnd else {
          partialLine.append(contentsOf: bytes[i...])
          return count
        }
        sectionBytes += lineBytes
        if partialLine.isEmpty {
          try line(UnsafeRawBufferPointer(rebasing: bytes[i..<lineEnd]), deliver)
        } else {
          partialLine.append(contentsOf: bytes[i..<lineEnd])
          var whole: [UInt8] = []
          swap(&whole, &partialLine)
          let result = whole.withUnsafeBytes { raw in
            Result { () throws(ResponseParseError) in try line(raw, deliver) }
          }
          whole.removeAll(keepingCapacity: true)
          partialLine = whole
          try result.get()
        }
        i = lineEnd + 1

      case .fixedBody, .chunkData, .untilClose:
        let take = state == .untilClose ? count - i : min(remaining, count - i)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[i..<i + take])
        i += take
        let more = deliver(.body(slice))
        if state != .untilClose {
          remaining -= take
          if remaining == 0 && state == .fixedBody {
            finish(deliver)
            return i
          }
          if remaining == 0 { state = .chunkDataEnd }
        }
        if !more { return i }

      case .chunkDataEnd, .chunkDataLF:
        let b = bytes[i]
        i += 1
        if b == HTTPBytes.lf {
          startChunkSizeLine()
        } else if b == HTTPBytes.cr && state == .chunkDataEnd {
          state = .chunkDataLF
        } else {
          throw .missingChunkDataCRLF
        }

      case .done, .failed:
        return i
      }
    }
    return i
  }

  private var limitError: ResponseParseError {
    switch state {
    case .chunkSizeLine: return .chunkLineTooLong
    case .trailerLine: return .trailersTooLarge
    default: return .headTooLarge
    }
  }

  // MARK: - Transitions

  mutating func startHead() {
    sectionBytes = 0
    fieldCount = 0
    status = 0
    isHTTP10 = false
    headers = HTTPFields()
    contentLength = nil
    hasTransferEncoding = false
    lastCodingIsChunked = false
    connectionClose = false
    connectionKeepAlive = false
    state = .statusLine
  }

  mutating func startChunkSizeLine() {
    sectionBytes = 0
    state = .chunkSizeLine
  }

  mutating func finish(_ deliver: (Event) -> Bool) {
    state = .done
    _ = deliver(.end(reusable: reusable))
  }

  enum State: UInt8 {
    case statusLine, fieldLine
    case fixedBody, untilClose
    case chunkSizeLine, chunkData, chunkDataEnd, chunkDataLF, trailerLine
    case done, failed
  }

}

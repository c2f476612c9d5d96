/// The fields of a head as the codec accepted them (an app's request, an upstream's response):
/// one buffer that holds every field as a wire line (`name: value` CRLF, the value trimmed), and
/// where each name and value lies in it. The proxy passes the lines it keeps on byte for byte
/// (field values are bytes, RFC 9110 §5.5: obs-text too), without a String per header; the
/// collection view (name, value) decodes them for the rare reader.
struct HTTPFields: RandomAccessCollection {
  private struct Span {
    var start: Int
    var nameEnd: Int
    var valueStart: Int
    var valueEnd: Int
    /// After the line's CRLF.
    var end: Int { valueEnd + 2 }
  }

  private(set) var bytes: [UInt8] = []
  private var spans: [Span] = []

  init() {}

  /// Fields from (name, value) pairs (tests, and the proxy's own answers).
  init(_ pairs: [(name: String, value: String)]) {
    for (name, value) in pairs { append(name: name.utf8, value: value.utf8) }
  }

  /// Adds a field; `name` and `value` are bytes the parser (or the caller) checked.
  mutating func append(name: some Collection<UInt8>, value: some Collection<UInt8>) {
    if spans.isEmpty {
      bytes.reserveCapacity(512)
      spans.reserveCapacity(16)
    }
    let start = bytes.count
    bytes.append(contentsOf: name)
    bytes.append(HTTPBytes.colon)
    bytes.append(HTTPBytes.sp)
    let valueStart = bytes.count
    bytes.append(contentsOf: value)
    spans.append(Span(start: start, nameEnd: start + name.count, valueStart: valueStart, valueEnd: bytes.count))
    bytes.append(HTTPBytes.cr)
    bytes.append(HTTPBytes.lf)
  }

  /// Adds `other`'s field at `position`, its line copied as is.
  mutating func append(_ other: HTTPFields, at position: Int) {
    if spans.isEmpty {
      bytes.reserveCapacity(other.bytes.count + 64)
      spans.reserveCapacity(other.spans.count + 1)
    }
    let span = other.spans[position]
    let shift = bytes.count - span.start
    bytes.append(contentsOf: other.bytes[span.start..<span.end])
    spans.append(
      Span(start: span.start + shift, nameEnd: span.nameEnd + shift, valueStart: span.valueStart + shift, valueEnd: span.valueEnd + shift))
  }

  // MARK: collection of (name, value)

  var startIndex: Int { 0 }
  var endIndex: Int { spans.count }

  subscript(position: Int) -> (name: String, value: String) {
    let span = spans[position]
    return (
      String(decoding: bytes[span.start..<span.nameEnd], as: UTF8.self),
      String(decoding: bytes[span.valueStart..<span.valueEnd], as: UTF8.self)
    )
  }

  // MARK: byte access for the proxy

  /// The field's wire line, CRLF included.
  func line(at position: Int) -> ArraySlice<UInt8> {
    let span = spans[position]
    return bytes[span.start..<span.end]
  }

  func value(at position: Int) -> ArraySlice<UInt8> {
    let span = spans[position]
    return bytes[span.valueStart..<span.valueEnd]
  }

  func nameLength(at position: Int) -> Int { spans[position].nameEnd - spans[position].start }

  /// Is the field's name `lowercase` (lower-case ASCII bytes, as `FieldName`'s), ignoring ASCII case?
  func name(at position: Int, is lowercase: [UInt8]) -> Bool {
    let span = spans[position]
    guard span.nameEnd - span.start == lowercase.count else { return false }
    var k = 0
    while k < lowercase.count {
      let a = bytes[span.start + k]
      guard HTTPBytes.lowercased(a) == lowercase[k] else { return false }
      k += 1
    }
    return true
  }

  /// Does the field's name start with `lowercase` (lower-case ASCII bytes), ignoring ASCII case?
  func name(at position: Int, hasPrefix lowercase: [UInt8]) -> Bool {
    let span = spans[position]
    guard span.nameEnd - span.start >= lowercase.count else { return false }
    var k = 0
    while k < lowercase.count {
      guard HTTPBytes.lowercased(bytes[span.start + k]) == lowercase[k] else { return false }
      k += 1
    }
    return true
  }

  /// The first field of that (lower-case) name.
  func firstIndex(named lowercase: [UInt8]) -> Int? { indices.first { name(at: $0, is: lowercase) } }

  /// The value of the first field of that (lower-case) name.
  func value(named lowercase: [UInt8]) -> String? {
    firstIndex(named: lowercase).map { String(decoding: value(at: $0), as: UTF8.self) }
  }
}

/// Lower-case field names as bytes, for `HTTPFields` lookups made for every request and response.
enum FieldName {
  static let connection = Array("connection".utf8)
  static let expect = Array("expect".utf8)
  static let idempotencyKey = Array("idempotency-key".utf8)
  static let transferEncoding = Array("transfer-encoding".utf8)
  static let requestID = Array("x-request-id".utf8)
  static let contentLength = Array("content-length".utf8)
  static let date = Array("date".utf8)
  static let retryAfter = Array("retry-after".utf8)
  static let proxyAuthorization = Array("proxy-authorization".utf8)
  static let traceparent = Array("traceparent".utf8)
  static let tracestate = Array("tracestate".utf8)
}

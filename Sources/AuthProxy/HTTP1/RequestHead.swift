/// A request the `RequestFramer` accepted, cut into its parts. The framer has already checked
/// every byte (token method, sane target, field syntax, one framing), so this only splits.
/// Field values stay bytes (`HTTPFields`): obs-text goes upstream exactly as the app sent it.
struct RequestHead {
  var method: String
  var target: String
  var isHTTP10: Bool
  var headers: HTTPFields
  var body: [UInt8]

  /// The request in `bytes` (exactly one: the empty lines the framer let through, the head, then
  /// its Content-Length or chunked body).
  init?(_ bytes: ArraySlice<UInt8>) {
    var lines = LineReader(bytes: bytes)
    guard let requestLine = lines.nextAfterEmptyLines(), let spaces = RequestHead.spaces(in: requestLine) else { return nil }
    method = String(decoding: requestLine[..<spaces.first], as: UTF8.self)
    target = String(decoding: requestLine[(spaces.first + 1)..<spaces.second], as: UTF8.self)
    isHTTP10 = requestLine[(spaces.second + 1)...].elementsEqual("HTTP/1.0".utf8)
    headers = HTTPFields()
    var chunked = false
    while let line = lines.next(), !line.isEmpty {
      guard let field = FieldLine.split(line) else { return nil }
      headers.append(name: line[line.startIndex..<field.colon], value: line[field.valueStart..<field.valueEnd])
      if !chunked && headers.name(at: headers.endIndex - 1, is: FieldName.transferEncoding) { chunked = true }
    }
    body = chunked ? RequestHead.dechunk(lines.rest) : Array(lines.rest)
  }

  /// The method and target of the request line at the start of `bytes`, which the framer
  /// accepted (`RequestFramer.requestLineAccepted`); what follows it may be incomplete.
  static func methodAndTarget(_ bytes: ArraySlice<UInt8>) -> (method: String, target: String)? {
    var lines = LineReader(bytes: bytes)
    guard let requestLine = lines.nextAfterEmptyLines(), let spaces = spaces(in: requestLine) else { return nil }
    return (
      String(decoding: requestLine[..<spaces.first], as: UTF8.self),
      String(decoding: requestLine[(spaces.first + 1)..<spaces.second], as: UTF8.self)
    )
  }

  /// Where the two spaces of METHOD SP target SP version are (single spaces: the framer
  /// checked). Indices, not slices: returning slices in a tuple cost 750 instructions a request
  /// in unspecialised value-witness calls (callgrind).
  private static func spaces(in line: ArraySlice<UInt8>) -> (first: Int, second: Int)? {
    guard let first = line.firstIndex(of: 0x20), let second = line[(first + 1)...].firstIndex(of: 0x20) else { return nil }
    return (first, second)
  }

  /// The data of a chunked body (sizes in hex; extensions, which the framer checked, are
  /// dropped), without its trailer section.
  private static func dechunk(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
    var lines = LineReader(bytes: bytes)
    var body: [UInt8] = []
    while let sizeLine = lines.next() {
      var size = 0
      for b in sizeLine {
        guard let digit = HTTPBytes.hexValue(b) else { break }
        size = size * 16 + digit
      }
      if size == 0 { break }
      body.append(contentsOf: lines.take(size))
      _ = lines.next()  // the CRLF after the data
    }
    return body
  }
}

/// Lines (LF or CRLF ended) of a byte slice, then raw bytes.
private struct LineReader {
  var bytes: ArraySlice<UInt8>

  /// The next line without its ending; nil at the end of the bytes.
  mutating func next() -> ArraySlice<UInt8>? {
    guard !bytes.isEmpty else { return nil }
    guard let lf = bytes.firstIndex(of: 0x0A) else {
      defer { bytes = bytes[bytes.endIndex...] }
      return bytes
    }
    var line = bytes[bytes.startIndex..<lf]
    if line.last == 0x0D { line = line.dropLast() }
    bytes = bytes[(lf + 1)...]
    return line
  }

  /// The first line that is not empty.
  mutating func nextAfterEmptyLines() -> ArraySlice<UInt8>? {
    while let line = next() {
      if !line.isEmpty { return line }
    }
    return nil
  }

  mutating func take(_ count: Int) -> ArraySlice<UInt8> {
    let taken = bytes.prefix(count)
    bytes = bytes.dropFirst(count)
    return taken
  }

  var rest: ArraySlice<UInt8> { bytes }
}

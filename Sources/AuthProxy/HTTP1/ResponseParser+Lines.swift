extension ResponseParser {
  // MARK: - Lines

  /// One complete line, without its LF.
  mutating func line(_ raw: UnsafeRawBufferPointer, _ deliver: (Event) -> Bool) throws(ResponseParseError) {
    // A CR just before the LF belongs to the line ending; any other CR is refused by the checks below.
    let text = raw.last == HTTPBytes.cr ? UnsafeRawBufferPointer(rebasing: raw.dropLast()) : raw
    switch state {
    case .statusLine:
      try statusLine(text)
    case .fieldLine:
      if text.isEmpty { finishHead(deliver) } else { try field(text) }
    case .chunkSizeLine:
      try chunkSizeLine(text)
    case .trailerLine:
      if text.isEmpty { finish(deliver) } else { try field(text) }
    default:
      break
    }
  }

  private mutating func statusLine(_ line: UnsafeRawBufferPointer) throws(ResponseParseError) {
    guard line.count >= 12, "HTTP/1.".utf8.elementsEqual(line[0..<7]), line[7] == 0x30 || line[7] == 0x31,
      line[8] == HTTPBytes.sp
    else { throw .malformedStatusLine }
    var code = 0
    for k in 9..<12 {
      let digit = line[k] &- 0x30
      guard digit < 10 else { throw .malformedStatusLine }
      code = code * 10 + Int(digit)
    }
    if line.count > 12 {
      guard line[12] == HTTPBytes.sp else { throw .malformedStatusLine }
      for k in 13..<line.count where !HTTPBytes.isFieldByte(line[k]) { throw .invalidReasonPhrase }
    }
    guard code >= 100 else { throw .invalidStatusCode }
    guard code != 101 else { throw .switchingProtocols }
    status = code
    isHTTP10 = line[7] == 0x30
    state = .fieldLine
  }

  /// A header or trailer field line (not empty).
  private mutating func field(_ line: UnsafeRawBufferPointer) throws(ResponseParseError) {
    let isTrailer = state == .trailerLine
    fieldCount += 1
    guard fieldCount <= maxHeaderCount else { throw isTrailer ? .tooManyTrailers : .tooManyHeaders }
    let field: FieldLine
    do {
      field = try FieldLine.read(line)
    } catch {
      switch error {
      case .obsoleteLineFolding: throw .obsoleteLineFolding
      case .missingColon: throw .missingColon
      case .emptyName: throw .emptyFieldName
      case .whitespaceBeforeColon: throw .whitespaceBeforeColon
      case .invalidName: throw .invalidFieldName
      case .invalidValue: throw .invalidFieldValue
      }
    }
    // Trailers and interim heads are only checked.
    if isTrailer || status < 200 { return }
    let name = UnsafeRawBufferPointer(rebasing: line[0..<field.colon])
    let value = UnsafeRawBufferPointer(rebasing: line[field.valueStart..<field.valueEnd])
    if try interpret(name, value) { headers.append(name: name, value: value) }
  }

  /// Notes what the framing and connection fields of a final head say; false for a field that
  /// is not kept (Content-Length: the head reports its one value instead).
  private mutating func interpret(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws(ResponseParseError) -> Bool {
    if Self.equalsIgnoringCase(name, "content-length") {
      try Self.forEachElement(of: value) { (element) throws(ResponseParseError) in
        let length = try Self.decimal(element)
        if let contentLength, contentLength != length { throw .conflictingContentLengths }
        contentLength = length
      }
      return false
    } else if Self.equalsIgnoringCase(name, "transfer-encoding") {
      if isHTTP10 { throw .transferEncodingInHTTP10 }
      hasTransferEncoding = true
      Self.forEachElement(of: value) { coding in
        if !coding.isEmpty { lastCodingIsChunked = Self.equalsIgnoringCase(coding, "chunked") }
      }
    } else if Self.equalsIgnoringCase(name, "connection") {
      Self.forEachElement(of: value) { option in
        if Self.equalsIgnoringCase(option, "close") {
          connectionClose = true
        } else if Self.equalsIgnoringCase(option, "keep-alive") {
          connectionKeepAlive = true
        }
      }
    }
    return true
  }

  /// The empty line ending a head.
  private mutating func finishHead(_ deliver: (Event) -> Bool) {
    if status < 200 {
      startHead()
      return
    }
    // Both framings (§6.3): the coding frames this body, and the connection is not trusted after it.
    reusable = !connectionClose && (!isHTTP10 || connectionKeepAlive) && !(hasTransferEncoding && contentLength != nil)
    _ = deliver(.head(status: status, headers: headers, contentLength: hasTransferEncoding ? nil : contentLength))
    headers = HTTPFields()
    if isHEAD || status == 204 || status == 304 {
      finish(deliver)
    } else if hasTransferEncoding && lastCodingIsChunked {
      startChunkSizeLine()
    } else if !hasTransferEncoding, let contentLength {
      if contentLength == 0 {
        finish(deliver)
      } else {
        remaining = contentLength
        state = .fixedBody
      }
    } else {
      reusable = false
      state = .untilClose
    }
  }

  private mutating func chunkSizeLine(_ line: UnsafeRawBufferPointer) throws(ResponseParseError) {
    var reader = ChunkSizeLine()
    for b in line { try Self.check(reader.take(b, maxSize: HTTPBytes.maxLength)) }
    try Self.check(reader.atLineEnd)
    let size = reader.size
    if size > 0 {
      remaining = size
      state = .chunkData
    } else {
      sectionBytes = 0
      fieldCount = 0
      state = .trailerLine
    }
  }

  // MARK: - Helpers

  private static func check(_ verdict: ChunkSizeLine.Verdict) throws(ResponseParseError) {
    switch verdict {
    case .ok: return
    case .invalidSize: throw .invalidChunkSize
    case .sizeOutOfRange: throw .chunkSizeOutOfRange
    case .invalidExtension: throw .invalidChunkExtension
    }
  }

  /// Calls `body` with each element of a comma-separated list, without surrounding spaces and tabs (may be empty).
  private static func forEachElement<E: Error>(
    of list: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws(E) -> Void
  ) throws(E) {
    var start = 0
    while start <= list.count {
      var end = start
      while end < list.count && list[end] != HTTPBytes.comma { end += 1 }
      let next = end + 1
      while start < end && HTTPBytes.isOWS(list[start]) { start += 1 }
      while end > start && HTTPBytes.isOWS(list[end - 1]) { end -= 1 }
      try body(UnsafeRawBufferPointer(rebasing: list[start..<end]))
      start = next
    }
  }

  /// A Content-Length value: digits only, at most `HTTPBytes.maxLength`.
  private static func decimal(_ digits: UnsafeRawBufferPointer) throws(ResponseParseError) -> Int {
    guard !digits.isEmpty else { throw .invalidContentLength }
    var value = 0
    for b in digits {
      switch HTTPBytes.appendDecimal(b, to: value, max: HTTPBytes.maxLength) {
      case .value(let next): value = next
      case .invalid: throw .invalidContentLength
      case .outOfRange: throw .contentLengthOutOfRange
      }
    }
    return value
  }

  /// Whether `bytes` is `lower` (lower-case ASCII) in any case.
  private static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lower: StaticString) -> Bool {
    guard bytes.count == lower.utf8CodeUnitCount else { return false }
    return lower.withUTF8Buffer { expected in
      for k in 0..<expected.count where HTTPBytes.lowercased(bytes[k]) != expected[k] { return false }
      return true
    }
  }
}

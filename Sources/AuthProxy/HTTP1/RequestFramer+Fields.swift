extension RequestFramer {
  /// One byte of a field value the framer interprets (or the first of any value).
  mutating func valueByte(_ b: UInt8) -> Failure? {
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
        switch HTTPBytes.appendDecimal(b, to: contentLengthValue, max: Int.max) {
        case .value(let value): contentLengthValue = value
        case .outOfRange: return .contentLengthOutOfRange
        case .invalid: return .invalidContentLength
        }
        contentLengthDigits += 1
        return nil
      }
      // A list, even of equal values, is what smuggling probes send (a response may carry one:
      // ResponseParser takes equal values); no client needs it.
      if b == HTTPBytes.comma { return .contentLengthList }
      return .invalidContentLength
    case .transferEncoding:
      // Parsers that strip only spaces before a value read a tab as part of the coding's name.
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

  /// The colon after a field name: which field is it?
  mutating func beginValue() -> Failure? {
    valueStarted = false
    leadingTab = false
    pendingOWS = false
    field = .other
    if name == PackedName.contentLength {
      if inTrailers { return .forbiddenTrailerField }
      field = .contentLength
      contentLengthValue = 0
      contentLengthDigits = 0
    } else if name == PackedName.transferEncoding {
      if inTrailers { return .forbiddenTrailerField }
      if hasTransferEncoding { return .multipleTransferEncodings }
      hasTransferEncoding = true
      field = .transferEncoding
      transferEncodingMatched = 0
    } else if name == PackedName.requestID {
      if inTrailers { return .forbiddenTrailerField }
      if !requestIDSeen {
        requestIDSeen = true
        field = .requestID
      }
    } else if name == PackedName.te {
      field = .te
      teMatched = 0
    } else if inTrailers && name == PackedName.host {
      return .forbiddenTrailerField
    }
    state = .fieldValue
    return nil
  }

  mutating func finishField() -> Failure? {
    switch field {
    case .other:
      break
    case .contentLength:
      guard contentLengthDigits > 0 else { return .invalidContentLength }
      // Several Content-Length lines are accepted only with equal values.
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
  mutating func finishSection() -> Failure? {
    countingHead = false
    if inTrailers {
      finishRequest()
      return nil
    }
    if hasTransferEncoding && hasContentLength { return .bothContentLengthAndTransferEncoding }
    if hasTransferEncoding && isHTTP10 { return .transferEncodingOnHTTP10 }
    // A server that ignores a HEAD's body would read it as the next request.
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
}

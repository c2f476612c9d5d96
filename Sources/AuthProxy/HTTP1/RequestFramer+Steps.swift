extension RequestFramer {
  /// One byte, in any state but the bulk ones (`run` takes body bytes and the plain runs of
  /// names, values and targets itself).
  mutating func step(_ b: UInt8) -> Failure? {
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
        return emptyLine()
      default:
        beginRequest()
        return step(b)
      }

    case .method:
      if b == HTTPBytes.sp { return finishMethod() }
      guard HTTPBytes.isTchar(b) else { return .malformedRequestLine }
      if methodLength < 8 { methodBits |= UInt64(b) << UInt64(methodLength * 8) }
      methodLength += 1
      return nil

    case .targetStart:
      if b == HTTPBytes.slash {
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
        if b == HTTPBytes.slash { return .notOriginForm }
      }
      if b == HTTPBytes.hash { return .fragmentInTarget }
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
        return emptyLine()
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
      return chunkSizeByte(b)

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
      // Handled in `run`; never reached with a byte.
      return nil
    }
  }

  // MARK: - Request line

  private mutating func emptyLine() -> Failure? {
    emptyLines += 1
    if emptyLines > Self.maxEmptyLines { return .tooManyEmptyLines }
    state = .lineStart
    return nil
  }

  private mutating func beginRequest() {
    state = .method
    emptyLines = 0
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

  /// Any token is a method (RFC 9110 §9.1); CONNECT would open a tunnel and TRACE would echo
  /// the head (credentials included) back, so neither is proxied, in any case of letters.
  private mutating func finishMethod() -> Failure? {
    guard methodLength > 0 else { return .malformedRequestLine }
    // OR 0x20 lower-cases letters; every byte of both names is a letter, so only they match.
    let folded = methodBits | 0x2020_2020_2020_2020
    if (methodLength == 7 && folded & 0x00FF_FFFF_FFFF_FFFF == PackedMethod.connectLower)
      || (methodLength == 5 && folded & 0xFF_FFFF_FFFF == PackedMethod.traceLower)
    {
      return .methodNotSupported
    }
    isHEAD = methodLength == 4 && methodBits == PackedMethod.head
    state = .targetStart
    return nil
  }

  private mutating func finishRequestLine() -> Failure? {
    inRequestLine = false
    requestLineAccepted = true
    state = .fieldStart
    return nil
  }

  // MARK: - Chunks

  mutating func startChunkSizeLine() {
    chunkLine = ChunkSizeLine()
    chunkLineBytes = 0
    state = .chunkSize
  }

  private mutating func chunkSizeByte(_ b: UInt8) -> Failure? {
    if b == HTTPBytes.cr || b == HTTPBytes.lf {
      if let failure = Self.failure(chunkLine.atLineEnd) { return failure }
      if b == HTTPBytes.lf { return finishChunkSizeLine() }
      pendingLine = .chunkSizeLine
      state = .expectLF
      return nil
    }
    if let failure = Self.failure(chunkLine.take(b, maxSize: Int.max)) { return failure }
    // The sum only grows with more digits: too large is known now.
    if chunkLine.size > limits.maxBody - chunkTotal { return .bodyTooLarge }
    chunkLineBytes += 1
    if chunkLineBytes > limits.maxHeaderBytes && chunkLine.inExtension { return .chunkLineTooLong }
    return nil
  }

  private static func failure(_ verdict: ChunkSizeLine.Verdict) -> Failure? {
    switch verdict {
    case .ok: return nil
    case .invalidSize: return .invalidChunkSize
    case .sizeOutOfRange: return .chunkSizeOutOfRange
    case .invalidExtension: return .invalidChunkExtension
    }
  }

  private mutating func finishChunkSizeLine() -> Failure? {
    let size = chunkLine.size
    chunkTotal += size
    if size == 0 {
      inTrailers = true
      countingHead = true
      headBytes = 0
      fieldCount = 0
      state = .fieldStart
    } else {
      remaining = size
      state = .chunkData
    }
    return nil
  }

  mutating func finishRequest() {
    requestsCompleted += 1
    requestLineAccepted = false
    state = .lineStart
    countingHead = false
    inTrailers = false
    requestIDSane = false
  }
}

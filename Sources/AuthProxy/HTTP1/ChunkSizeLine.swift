/// One chunk-size line (RFC 9112 §7.1: `chunk-size [ chunk-ext ]`, without its line ending),
/// read byte by byte: the request framer and the response parser both read chunk sizes and
/// extensions with it, so both sides accept and refuse the same lines.
///
/// Extensions are checked against the grammar of §7.1.1 and then ignored (the proxy re-frames
/// every body, so none is ever passed on):
///
///     chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
///     chunk-ext-name = token;  chunk-ext-val = token / quoted-string
///
/// A chunk size has at most 16 hex digits and is at most the caller's `maxSize`.
struct ChunkSizeLine {
  enum Verdict: Equatable {
    case ok
    case invalidSize
    case sizeOutOfRange
    case invalidExtension
  }

  /// Most hex digits in a chunk size.
  static let maxDigits = 16

  /// The size read so far.
  private(set) var size = 0
  private(set) var digits = 0
  private var state: State = .digits

  /// Past the size: reading whitespace or an extension.
  var inExtension: Bool { state != .digits }

  private enum State: UInt8 {
    case digits
    /// Whitespace after the size: only a `;` may follow.
    case beforeSemicolon
    case beforeName, name, afterName, beforeValue, token, quoted, quotedPair, afterValue
  }

  init() {}

  /// Takes the next byte of the line (never its CR or LF).
  @inline(__always)
  mutating func take(_ b: UInt8, maxSize: Int) -> Verdict {
    if state == .digits {
      if let digit = HTTPBytes.hexValue(b) {
        guard digits < Self.maxDigits, size <= (maxSize - digit) >> 4 else { return .sizeOutOfRange }
        digits += 1
        size = size << 4 | digit
        return .ok
      }
      guard digits > 0 else { return .invalidSize }
      if b == HTTPBytes.semicolon {
        state = .beforeName
        return .ok
      }
      guard HTTPBytes.isOWS(b) else { return .invalidSize }
      state = .beforeSemicolon
      return .ok
    }
    return extensionByte(b) ? .ok : (state == .beforeSemicolon ? .invalidSize : .invalidExtension)
  }

  /// What the line ending, arriving now, makes of the line.
  var atLineEnd: Verdict {
    switch state {
    case .digits: return digits > 0 ? .ok : .invalidSize
    case .name, .afterName, .token, .afterValue: return .ok
    case .beforeSemicolon: return .invalidSize
    default: return .invalidExtension
    }
  }

  private mutating func extensionByte(_ b: UInt8) -> Bool {
    let ows = HTTPBytes.isOWS(b)
    switch state {
    case .digits:
      return false
    case .beforeSemicolon:
      if b == HTTPBytes.semicolon { state = .beforeName } else if !ows { return false }
    case .beforeName:
      if HTTPBytes.isTchar(b) { state = .name } else if !ows { return false }
    case .name, .afterName:
      if state == .name && HTTPBytes.isTchar(b) { return true }
      if b == HTTPBytes.semicolon {
        state = .beforeName
      } else if b == HTTPBytes.equals {
        state = .beforeValue
      } else if ows {
        state = .afterName
      } else {
        return false
      }
    case .beforeValue:
      if b == HTTPBytes.quote {
        state = .quoted
      } else if HTTPBytes.isTchar(b) {
        state = .token
      } else if !ows {
        return false
      }
    case .token, .afterValue:
      if state == .token && HTTPBytes.isTchar(b) { return true }
      if b == HTTPBytes.semicolon {
        state = .beforeName
      } else if ows {
        state = .afterValue
      } else {
        return false
      }
    case .quoted:
      // qdtext: HTAB, SP, visible ASCII but `"` and `\`, obs-text.
      if b == HTTPBytes.quote {
        state = .afterValue
      } else if b == HTTPBytes.backslash {
        state = .quotedPair
      } else if !HTTPBytes.isFieldByte(b) {
        return false
      }
    case .quotedPair:
      guard HTTPBytes.isFieldByte(b) else { return false }
      state = .quoted
    }
    return true
  }
}

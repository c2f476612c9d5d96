/// Byte classes of HTTP/1.1 (RFC 9110/9112) and the codec's one set of bounds, shared by the
/// request framer, the request head splitter and the upstream response parser.
enum HTTPBytes {
  static let cr: UInt8 = 0x0D
  static let lf: UInt8 = 0x0A
  static let sp: UInt8 = 0x20
  static let htab: UInt8 = 0x09
  static let colon: UInt8 = 0x3A
  static let semicolon: UInt8 = 0x3B
  static let comma: UInt8 = 0x2C
  static let equals: UInt8 = 0x3D
  static let quote: UInt8 = 0x22
  static let backslash: UInt8 = 0x5C
  static let slash: UInt8 = 0x2F
  static let hash: UInt8 = 0x23

  /// Largest Content-Length or chunk size a response may declare (a request's are bounded by
  /// `--max-body`).
  static let maxLength = 1 << 62

  /// SP or HTAB (OWS, BWS).
  @inline(__always)
  static func isOWS(_ b: UInt8) -> Bool { b == sp || b == htab }

  /// A byte a field value may hold (RFC 9110 §5.5): HTAB, SP, visible ASCII and obs-text; no
  /// other control character, no DEL.
  @inline(__always)
  static func isFieldByte(_ b: UInt8) -> Bool { b >= 0x20 ? b != 0x7F : b == htab }

  /// `value * 10 + digit` for a decimal length (a digit byte `b`), or nil when `b` is not a
  /// digit (`.invalid`) or the result would pass `max` (`.outOfRange`).
  @inline(__always)
  static func appendDecimal(_ b: UInt8, to value: Int, max: Int) -> DecimalStep {
    let digit = Int(b &- 0x30)
    guard digit < 10 else { return .invalid }
    guard value <= (max - digit) / 10 else { return .outOfRange }
    return .value(value * 10 + digit)
  }

  enum DecimalStep {
    case value(Int)
    case invalid
    case outOfRange
  }

  /// RFC 9110 tchar: "!#$%&'*+-.^_`|~", digits and letters.
  @inline(__always)
  static func isTchar(_ b: UInt8) -> Bool {
    if b < 64 { return (0x03FF_6CFA_0000_0000 as UInt64) >> UInt64(b) & 1 == 1 }
    if b < 128 { return (0x57FF_FFFF_C7FF_FFFE as UInt64) >> UInt64(b &- 64) & 1 == 1 }
    return false
  }

  @inline(__always)
  /// ASCII letter or digit.
  static func isAlphanumeric(_ b: UInt8) -> Bool {
    (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b)
  }

  static func lowercased(_ b: UInt8) -> UInt8 {
    b &- 0x41 < 26 ? b | 0x20 : b
  }

  /// A hex digit's value; nil for anything else.
  @inline(__always)
  static func hexValue(_ b: UInt8) -> Int? {
    switch b {
    case 0x30...0x39: return Int(b &- 0x30)
    case 0x41...0x46: return Int(b &- 0x37)
    case 0x61...0x66: return Int(b &- 0x57)
    default: return nil
    }
  }
}

extension Array where Element == UInt8 {
  /// The 16 lower-case hex digits of `value`, most significant first (W3C trace and span ids),
  /// in two appends: the digits are worked out in a register, eight at a time, and copied
  /// through a borrowed view of it (an append per digit cost 25 instructions a digit).
  mutating func appendHex(_ value: UInt64) {
    appendHexDigits(UInt32(truncatingIfNeeded: value &>> 32))
    appendHexDigits(UInt32(truncatingIfNeeded: value))
  }

  private mutating func appendHexDigits(_ value: UInt32) {
    // One nibble per byte, the most significant in the highest byte.
    var x = UInt64(value)
    x = (x | x &<< 16) & 0x0000_FFFF_0000_FFFF
    x = (x | x &<< 8) & 0x00FF_00FF_00FF_00FF
    x = (x | x &<< 4) & 0x0F0F_0F0F_0F0F_0F0F
    // 0-9 → '0'-'9', 10-15 → 'a'-'f' ('a' is '0' + 10 + 0x27); no byte carries into the next.
    let letters = ((x &+ 0x0606_0606_0606_0606) &>> 4) & 0x0101_0101_0101_0101
    let ascii = x &+ 0x3030_3030_3030_3030 &+ letters &* 0x27
    Swift.withUnsafeBytes(of: ascii.bigEndian) { append(contentsOf: $0) }
  }

  /// Appends the string's UTF-8 in one copy of its contiguous storage: appending a `UTF8View`
  /// goes byte by byte (about 170 instructions for a short header name, callgrind), and heads
  /// are written a dozen strings at a time for every request.
  @inline(__always)
  mutating func appendUTF8(_ text: String) {
    var text = text
    text.withUTF8 { append(contentsOf: $0) }
  }

  /// `name: value` and its CRLF, as a head writer adds a field of its own.
  @inline(__always)
  mutating func appendFieldLine(_ name: String, _ value: String) {
    appendUTF8(name)
    append(HTTPBytes.colon)
    append(HTTPBytes.sp)
    appendUTF8(value)
    append(HTTPBytes.cr)
    append(HTTPBytes.lf)
  }
}

extension String {
  /// Equal to `lowercase` (lower-case ASCII) ignoring ASCII case, without building a lower-cased
  /// copy: header names are compared this way on every request.
  func equalsIgnoringASCIICase(_ lowercase: String) -> Bool {
    guard utf8.count == lowercase.utf8.count else { return false }
    return startsIgnoringASCIICase(with: lowercase)
  }

  /// Starts with `lowercase` (lower-case ASCII), ignoring ASCII case.
  func hasPrefixIgnoringASCIICase(_ lowercase: String) -> Bool {
    guard utf8.count >= lowercase.utf8.count else { return false }
    return startsIgnoringASCIICase(with: lowercase)
  }

  /// The comparison over the two strings' contiguous UTF-8 (native strings always have it):
  /// iterating two `UTF8View`s in step costs several times more.
  private func startsIgnoringASCIICase(with lowercase: String) -> Bool {
    let matches = { (a: UInt8, b: UInt8) in HTTPBytes.lowercased(a) == b }
    let fast = utf8.withContiguousStorageIfAvailable { mine in
      lowercase.utf8.withContiguousStorageIfAvailable { theirs in
        zip(mine, theirs).allSatisfy(matches)
      }
    }
    return (fast ?? nil) ?? zip(utf8, lowercase.utf8).allSatisfy(matches)
  }
}

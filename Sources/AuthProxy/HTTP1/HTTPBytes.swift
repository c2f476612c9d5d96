/// Byte classes of HTTP/1.1 (RFC 9110/9112) shared by the request framer, the request head
/// splitter and the upstream response parser.
enum HTTPBytes {
  static let cr: UInt8 = 0x0D
  static let lf: UInt8 = 0x0A
  static let sp: UInt8 = 0x20
  static let htab: UInt8 = 0x09
  static let colon: UInt8 = 0x3A
  static let semicolon: UInt8 = 0x3B
  static let comma: UInt8 = 0x2C

  /// RFC 9110 tchar: "!#$%&'*+-.^_`|~", digits and letters.
  @inline(__always)
  static func isTchar(_ b: UInt8) -> Bool {
    if b < 64 { return (0x03FF_6CFA_0000_0000 as UInt64) >> UInt64(b) & 1 == 1 }
    if b < 128 { return (0x57FF_FFFF_C7FF_FFFE as UInt64) >> UInt64(b &- 64) & 1 == 1 }
    return false
  }

  @inline(__always)
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

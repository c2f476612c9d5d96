/// Minimal JSON text building for the hot path (access log lines, error bodies): no
/// reflection, no intermediate dictionaries. The `append…` forms write UTF-8 straight into a
/// byte buffer, which is what the access log does for every request.
public enum JSONText {
  /// `value` as a JSON string literal, quotes included.
  public static func quoted(_ value: String) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(value.utf8.count + 2)
    appendQuoted(value, to: &out)
    return String(decoding: out, as: UTF8.self)
  }

  /// An object from ordered key/raw-JSON-value pairs.
  public static func object(_ members: [(String, String)]) -> String {
    "{" + members.map { quoted($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
  }

  private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

  /// Appends `value` as a JSON string literal. Escapes quotes, backslashes, control characters,
  /// DEL and U+2028/U+2029 (line breaks to JavaScript); copies every other byte.
  public static func appendQuoted(_ value: String, to out: inout [UInt8]) {
    out.append(0x22)
    var value = value
    value.withUTF8 { bytes in
      // Runs of bytes that need no escape are copied whole (most values are one run).
      var runStart = 0
      var i = 0
      while i < bytes.count {
        let b = bytes[i]
        let escape: (UInt8, UInt32)?  // (short escape letter or 0, code point for \u)
        var length = 1
        switch b {
        case 0x22: escape = (0x22, 0)
        case 0x5C: escape = (0x5C, 0)
        case 0x0A: escape = (0x6E, 0)
        case 0x0D: escape = (0x72, 0)
        case 0x09: escape = (0x74, 0)
        case 0..<0x20, 0x7F: escape = (0, UInt32(b))
        case 0xE2 where i + 2 < bytes.count && bytes[i + 1] == 0x80 && (bytes[i + 2] == 0xA8 || bytes[i + 2] == 0xA9):
          escape = (0, bytes[i + 2] == 0xA8 ? 0x2028 : 0x2029)
          length = 3
        default: escape = nil
        }
        guard let (letter, codePoint) = escape else {
          i += 1
          continue
        }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i]))
        if letter != 0 {
          out.append(0x5C)
          out.append(letter)
        } else {
          appendUnicodeEscape(codePoint, to: &out)
        }
        i += length
        runStart = i
      }
      out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<bytes.count]))
    }
    out.append(0x22)
  }

  private static func appendUnicodeEscape(_ value: UInt32, to out: inout [UInt8]) {
    out.append(0x5C)
    out.append(0x75)
    for shift in stride(from: 12, through: 0, by: -4) { out.append(hexDigits[Int((value >> UInt32(shift)) & 0xF)]) }
  }

  /// Appends a decimal integer.
  public static func appendInt(_ value: Int, to out: inout [UInt8]) {
    if value < 0 { out.append(0x2D) }
    var magnitude = value.magnitude
    // Most significant digit first: reversing `out[start...]` afterwards would copy the whole
    // buffer (a slice mutated through a range subscript is not done in place).
    var divisor: UInt = 1
    while magnitude / divisor >= 10 { divisor *= 10 }
    repeat {
      out.append(0x30 + UInt8(magnitude / divisor))
      magnitude %= divisor
      divisor /= 10
    } while divisor > 0
  }

  /// Appends `value` rounded to three decimals, as Swift prints such a Double ("12.0", "0.25",
  /// "1.234"); `null` when it is not finite.
  public static func appendMilliseconds(_ value: Double, to out: inout [UInt8]) {
    let thousandths = (value * 1000).rounded()
    guard thousandths.isFinite, thousandths.magnitude < 1e15 else {
      // Out of the fixed-point range: the general formatting, rare enough.
      out.append(contentsOf: (value.isFinite ? String(thousandths / 1000) : "null").utf8)
      return
    }
    var units = Int(thousandths)
    if units < 0 {
      out.append(0x2D)
      units = -units
    }
    appendInt(units / 1000, to: &out)
    out.append(0x2E)
    var fraction = units % 1000
    if fraction == 0 {
      out.append(0x30)
      return
    }
    var divisor = 100
    while fraction > 0 {
      out.append(0x30 + UInt8(fraction / divisor))
      fraction %= divisor
      divisor /= 10
    }
  }
}

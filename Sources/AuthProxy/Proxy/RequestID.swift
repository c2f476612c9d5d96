/// The `X-Request-ID` rule of SPEC §4: keep a sane one, otherwise make a UUID.
public enum RequestID {
  /// 1–128 of `[A-Za-z0-9._:-]`.
  public static func isSane(_ value: String) -> Bool {
    let bytes = value.utf8
    guard (1...128).contains(bytes.count) else { return false }
    return bytes.allSatisfy { b in
      (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F
        || b == 0x3A || b == 0x2D
    }
  }

  public static func pick(_ incoming: String?) -> String {
    var random = SystemRandomNumberGenerator()
    return pick(incoming, using: &random)
  }

  public static func pick(_ incoming: String?, using random: inout some RandomNumberGenerator) -> String {
    if let incoming, isSane(incoming) { return incoming }
    return generate(using: &random)
  }

  private static func hexDigit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? 0x30 + nibble : 0x57 + nibble }

  /// A random (version 4) UUID, lower-case.
  public static func generate() -> String {
    var random = SystemRandomNumberGenerator()
    return generate(using: &random)
  }

  /// A UUID from `source`: a worker passes its `FastRandom`, as the system generator costs a
  /// system call per 8 bytes (and so does glibc 2.36's `arc4random`).
  public static func generate(using source: inout some RandomNumberGenerator) -> String {
    let high = source.next()
    let low = source.next()
    var out: [UInt8] = []
    out.reserveCapacity(36)
    for i in 0..<16 {
      var byte = UInt8(truncatingIfNeeded: (i < 8 ? high : low) >> ((i % 8) * 8))
      if i == 6 { byte = (byte & 0x0F) | 0x40 }  // version 4
      if i == 8 { byte = (byte & 0x3F) | 0x80 }  // variant 10
      if i == 4 || i == 6 || i == 8 || i == 10 { out.append(0x2D) }
      out.append(hexDigit(byte >> 4))
      out.append(hexDigit(byte & 0x0F))
    }
    return String(decoding: out, as: UTF8.self)
  }
}

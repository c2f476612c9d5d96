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
    if let incoming, isSane(incoming) { return incoming }
    return generate()
  }

  /// A random (version 4) UUID, lower-case.
  public static func generate() -> String {
    var generator = SystemRandomNumberGenerator()
    let high = generator.next()
    let low = generator.next()
    var bytes = (0..<8).map { UInt8(truncatingIfNeeded: high >> ($0 * 8)) } + (0..<8).map { UInt8(truncatingIfNeeded: low >> ($0 * 8)) }
    bytes[6] = (bytes[6] & 0x0F) | 0x40
    bytes[8] = (bytes[8] & 0x3F) | 0x80
    let hex: [Character] = Array("0123456789abcdef")
    var out = ""
    out.reserveCapacity(36)
    for (i, b) in bytes.enumerated() {
      if i == 4 || i == 6 || i == 8 || i == 10 { out.append("-") }
      out.append(hex[Int(b >> 4)])
      out.append(hex[Int(b & 0x0F)])
    }
    return out
  }
}

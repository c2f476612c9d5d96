import Glibc

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

  private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

  /// A random (version 4) UUID, lower-case. glibc's `arc4random` (a ChaCha20 generator seeded
  /// from the kernel) costs no system call per request, unlike `SystemRandomNumberGenerator`.
  public static func generate() -> String {
    var random = [UInt8](repeating: 0, count: 16)
    for i in stride(from: 0, to: 16, by: 4) {
      let word = arc4random()
      for j in 0..<4 { random[i + j] = UInt8(truncatingIfNeeded: word >> (j * 8)) }
    }
    random[6] = (random[6] & 0x0F) | 0x40
    random[8] = (random[8] & 0x3F) | 0x80
    var out = [UInt8]()
    out.reserveCapacity(36)
    for (i, b) in random.enumerated() {
      if i == 4 || i == 6 || i == 8 || i == 10 { out.append(0x2D) }
      out.append(hex[Int(b >> 4)])
      out.append(hex[Int(b & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
  }
}

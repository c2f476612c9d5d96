/// A lower-cased field name, its first 24 bytes packed for cheap comparison: the request
/// framer compares every field name it reads with the few it interprets.
struct PackedName: Equatable, Sendable {
  var w0: UInt64 = 0
  var w1: UInt64 = 0
  var w2: UInt64 = 0
  var length = 0

  init() {}

  init(w0: UInt64, w1: UInt64, w2: UInt64, length: Int) {
    self.w0 = w0
    self.w1 = w1
    self.w2 = w2
    self.length = length
  }

  init(_ text: String) {
    for b in text.utf8 { append(b) }
  }

  @inline(__always)
  mutating func append(_ b: UInt8) {
    if length < 24 {
      let v = UInt64(b) << UInt64((length & 7) << 3)
      switch length >> 3 {
      case 0: w0 |= v
      case 1: w1 |= v
      default: w2 |= v
      }
    }
    length += 1
  }

  // Lower-case names packed as literals (no lazy initialisation on the hot path; checked by the tests).
  static let contentLength = PackedName(w0: 0x2D74_6E65_746E_6F63, w1: 0x6874_676E_656C, w2: 0, length: 14)
  static let transferEncoding = PackedName(w0: 0x7265_6673_6E61_7274, w1: 0x6E69_646F_636E_652D, w2: 0x67, length: 17)
  static let requestID = PackedName(w0: 0x7365_7571_6572_2D78, w1: 0x6469_2D74, w2: 0, length: 12)
  static let host = PackedName(w0: 0x7473_6F68, w1: 0, w2: 0, length: 4)
  static let te = PackedName(w0: 0x6574, w1: 0, w2: 0, length: 2)
}

/// Methods the framer treats apart, packed little-endian (first byte lowest) as it reads them.
enum PackedMethod {
  static let head: UInt64 = 0x44_41_45_48
  /// Lower case: compared with the method's bytes OR 0x20, so any case matches.
  static let connectLower: UInt64 = 0x74_63_65_6E_6E_6F_63
  static let traceLower: UInt64 = 0x65_63_61_72_74

  static func pack(_ text: String) -> UInt64 {
    var bits: UInt64 = 0
    for (i, b) in text.utf8.prefix(8).enumerated() { bits |= UInt64(b) << UInt64(i * 8) }
    return bits
  }
}

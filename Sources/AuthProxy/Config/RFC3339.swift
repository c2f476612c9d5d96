import Glibc
import Synchronization

/// RFC 3339 timestamps, as the API and the access log use them.
public enum RFC3339 {
  /// Parses `2026-11-29T10:00:00Z`, with optional fractional seconds and a `Z` or `±hh:mm` offset.
  public static func parse(_ text: String) -> Double? {
    let b = Array(text.utf8)
    func num(_ from: Int, _ count: Int) -> Int? {
      guard from + count <= b.count else { return nil }
      var v = 0
      for i in from..<(from + count) {
        guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
        v = v * 10 + Int(b[i] - 0x30)
      }
      return v
    }
    guard b.count >= 20, b[4] == 0x2D, b[7] == 0x2D, b[10] == 0x54 || b[10] == 0x74 || b[10] == 0x20,
      b[13] == 0x3A, b[16] == 0x3A,
      let year = num(0, 4), let month = num(5, 2), let day = num(8, 2), let hour = num(11, 2),
      let minute = num(14, 2), let second = num(17, 2), (1...12).contains(month), (1...31).contains(day),
      hour < 24, minute < 60, second <= 60
    else { return nil }
    var i = 19
    var fraction = 0.0
    if i < b.count, b[i] == 0x2E {
      i += 1
      var scale = 0.1
      let start = i
      while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
        fraction += Double(b[i] - 0x30) * scale
        scale /= 10
        i += 1
      }
      guard i > start else { return nil }
    }
    guard i < b.count else { return nil }
    var offset = 0
    if b[i] == 0x5A || b[i] == 0x7A {
      guard i + 1 == b.count else { return nil }
    } else if b[i] == 0x2B || b[i] == 0x2D {
      guard i + 6 == b.count, b[i + 3] == 0x3A, let oh = num(i + 1, 2), let om = num(i + 4, 2), oh < 24, om < 60 else {
        return nil
      }
      offset = (oh * 3600 + om * 60) * (b[i] == 0x2B ? 1 : -1)
    } else {
      return nil
    }
    var t = tm()
    t.tm_year = Int32(year - 1900)
    t.tm_mon = Int32(month - 1)
    t.tm_mday = Int32(day)
    t.tm_hour = Int32(hour)
    t.tm_min = Int32(minute)
    // A leap second (`23:59:60`, RFC 3339 §5.7) is read as the second after :59, as POSIX time
    // has it; given to timegm, it could roll the day over and fail the check below.
    let leap = second == 60 ? 1 : 0
    t.tm_sec = Int32(second - leap)
    var beforeLeap = timegm(&t)
    // timegm rolls impossible dates over (Feb 31 → Mar 3): refuse them instead.
    var check = tm()
    gmtime_r(&beforeLeap, &check)
    guard check.tm_mday == Int32(day), check.tm_mon == Int32(month - 1) else { return nil }
    return Double(beforeLeap + leap - offset) + fraction
  }

  /// `2026-11-29T10:00:00.123Z`, or without milliseconds.
  public static func format(_ seconds: Double, milliseconds: Bool = true) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(24)
    append(seconds, milliseconds: milliseconds, to: &out)
    return String(decoding: out, as: UTF8.self)
  }

  /// Appends the `format` text of `seconds` as UTF-8.
  public static func append(_ seconds: Double, milliseconds: Bool = true, to out: inout [UInt8]) {
    var cache = SecondCache()
    append(seconds, milliseconds: milliseconds, to: &out, cache: &cache)
  }

  /// The text of the last whole second formatted: the access log (one cache per worker)
  /// formats the date and time once per second instead of once per line.
  public struct SecondCache {
    fileprivate var second = time_t.min
    fileprivate var text: [UInt8] = []
    public init() {}
  }

  /// `append`, reusing `cache` when `seconds` falls in the second it holds.
  public static func append(_ seconds: Double, milliseconds: Bool = true, to out: inout [UInt8], cache: inout SecondCache) {
    // Round to the nearest millisecond, carrying into the seconds.
    let totalMillis = Int64((seconds * 1000).rounded())
    let whole = time_t(totalMillis.quotientAndRemainder(dividingBy: 1000).quotient - (totalMillis % 1000 < 0 ? 1 : 0))
    let millis = Int((totalMillis % 1000 + 1000) % 1000)
    if cache.second != whole {
      cache.second = whole
      cache.text.removeAll(keepingCapacity: true)
      appendWholeSecond(whole, to: &cache.text)
    }
    out.append(contentsOf: cache.text)
    if milliseconds {
      out.append(0x2E)
      pad(millis, 3, to: &out)
    }
    out.append(0x5A)
  }

  /// "YYYY-MM-DDTHH:MM:SS" of `whole` (UTC).
  private static func appendWholeSecond(_ whole: time_t, to out: inout [UInt8]) {
    var whole = whole
    var t = tm()
    gmtime_r(&whole, &t)
    pad(Int(t.tm_year) + 1900, 4, to: &out)
    out.append(0x2D)
    pad(Int(t.tm_mon) + 1, 2, to: &out)
    out.append(0x2D)
    pad(Int(t.tm_mday), 2, to: &out)
    out.append(0x54)
    pad(Int(t.tm_hour), 2, to: &out)
    out.append(0x3A)
    pad(Int(t.tm_min), 2, to: &out)
    out.append(0x3A)
    pad(Int(t.tm_sec), 2, to: &out)
  }

  /// `v` in at least `width` digits, zero-padded.
  private static func pad(_ v: Int, _ width: Int, to out: inout [UInt8]) {
    var divisor = 1
    for _ in 1..<width { divisor *= 10 }
    if v >= divisor * 10 {
      JSONText.appendInt(v, to: &out)
      return
    }
    var v = max(0, v)
    while divisor > 0 {
      out.append(0x30 + UInt8(v / divisor))
      v %= divisor
      divisor /= 10
    }
  }
}

import Glibc
import Synchronization

/// Wall-clock time in seconds since the epoch; injectable so token expiry is tested without sleeping.
public protocol WallClock: Sendable {
  func now() -> Double
}

public struct SystemClock: WallClock {
  public init() {}
  public func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
  }
}

/// Monotonic seconds, for durations.
public func monotonicSeconds() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Monotonic seconds, injectable: the data path's timeout decisions (header, body, idle and
/// stall timeouts, the idle pool's expiry, the reuse window, the retry budget) read this, so
/// tests move time instead of waiting for it. Timers still fire in real time; they only ask
/// for a decision, which reads the clock.
public protocol MonotonicClock: Sendable {
  func seconds() -> Double
}

/// `CLOCK_MONOTONIC`.
public struct SystemMonotonicClock: MonotonicClock {
  public init() {}
  @inline(__always) public func seconds() -> Double { monotonicSeconds() }
}

/// A monotonic clock that moves only when told to (tests); safe to read from any thread.
public final class ManualMonotonicClock: MonotonicClock {
  private let now: Mutex<Double>
  public init(_ start: Double = 1000) { now = Mutex(start) }
  public func seconds() -> Double { now.withLock { $0 } }
  /// Moves the clock forward by `interval` seconds (never back: it is monotonic).
  public func advance(by interval: Double) { now.withLock { $0 += max(0, interval) } }
}

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

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP date.
public enum RetryAfter {
  /// Seconds from `now` that `value` asks to wait (a date in the past: 0); nil when it is neither form.
  public static func seconds(_ value: String, now: Double) -> Double? {
    if let seconds = Double(value) { return seconds.isFinite && seconds >= 0 ? seconds : nil }
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    let parts = value.split(separator: " ")
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    guard parts.count == 6, parts[0].hasSuffix(","), parts[5] == "GMT", parts[1].count == 2, parts[1].allSatisfy(\.isWholeNumber),
      let day = Int(parts[1]), let month = months.firstIndex(of: String(parts[2])), parts[3].count == 4,
      parts[3].allSatisfy(\.isWholeNumber), let year = Int(parts[3])
    else { return nil }
    let clock = parts[4].split(separator: ":")
    guard parts[4].count == 8, clock.count == 3, clock.allSatisfy({ $0.count == 2 }) else { return nil }
    func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
    // RFC3339.parse checks the digits and ranges (and refuses Feb 31).
    guard let date = RFC3339.parse("\(year)-\(two(month + 1))-\(two(day))T\(clock.joined(separator: ":"))Z") else { return nil }
    return max(0, date - now)
  }
}

/// IMF-fixdate (RFC 9110 §5.6.7), e.g. "Sun, 06 Nov 1994 08:49:37 GMT": `Date` headers of the
/// proxy's own answers, and the sandbox's `Retry-After` dates.
public enum HTTPDate {
  private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
  private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

  public static func now() -> String { format(time(nil)) }

  public static func format(_ seconds: time_t) -> String {
    var whole = seconds
    var t = tm()
    gmtime_r(&whole, &t)
    func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return "\(days[Int(t.tm_wday)]), \(two(t.tm_mday)) \(months[Int(t.tm_mon)]) \(t.tm_year + 1900) "
      + "\(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec)) GMT"
  }
}

import Glibc
import Synchronization

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

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

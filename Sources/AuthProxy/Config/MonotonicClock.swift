import Glibc
import Synchronization

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

import Synchronization

/// How fast requests may go upstream: globally (`--max-upstream-concurrency`, `--rate-limit`,
/// `--rate-burst`) or for one app (its entry in the apps file). nil: no such limit.
public struct UpstreamLimits: Sendable, Equatable {
  /// Most requests under way upstream at once (from admission to the answer's end).
  public var maxConcurrency: Int?
  /// Requests admitted per second, on average.
  public var ratePerSecond: Double?
  /// Requests that may be admitted at once after a quiet spell (the bucket's size); with a
  /// rate and no burst, the rate rounded up (at least 1).
  public var burst: Int?

  public init(maxConcurrency: Int? = nil, ratePerSecond: Double? = nil, burst: Int? = nil) {
    self.maxConcurrency = maxConcurrency
    self.ratePerSecond = ratePerSecond
    self.burst = burst
  }

  public var isEmpty: Bool { maxConcurrency == nil && ratePerSecond == nil }

  /// The bucket's size: `burst`, else the rate per second rounded up, at least 1.
  public var bucketSize: Double {
    if let burst { return Double(max(1, burst)) }
    return max(1, (ratePerSecond ?? 1).rounded(.up))
  }

  /// Parses a rate like `10/s`, `300/m` (per minute) or `3600/h`, or a bare number (per
  /// second); nil unless it is more than 0 and at most 1,000,000 per second.
  public static func parseRate(_ text: String) -> Double? {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count <= 2, let count = Double(parts[0]), count.isFinite, count > 0 else { return nil }
    var perSecond = count
    if parts.count == 2 {
      switch parts[1] {
      case "s", "sec", "second": break
      case "m", "min", "minute": perSecond = count / 60
      case "h", "hour": perSecond = count / 3600
      default: return nil
      }
    }
    return perSecond <= 1_000_000 ? perSecond : nil
  }
}

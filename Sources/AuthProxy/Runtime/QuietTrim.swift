import CShims

/// When to give the allocator's free memory back to the kernel: once traffic has stopped.
///
/// glibc's malloc keeps what worker threads free in their arenas for reuse and returns only the
/// top of each: after a burst (256 upstream connections with their buffers, thousands of client
/// connections) RSS stays near the burst's peak, 50 MiB for a process that idles at 15, though
/// 30 MiB of it are free (`malloc_trim` measured it). Trimming while requests flow would cost
/// page faults on the next burst and stall the workers on the arena locks; trimming once
/// nothing has moved for a whole tick costs neither.
struct QuietTrim {
  private var lastActivity: Int?
  private var trimmedAt: (activity: Int, held: Int)?

  /// Called once a tick. `activity` grows with traffic (requests answered, by every worker);
  /// `inFlight` is the requests being served now; `held` counts what holds memory between
  /// requests (idle upstream connections, which the pool lets go once they outnumber the recent
  /// peak or outlive their age limit, and open client connections). True when a trim is due:
  /// no request was answered since the last tick, none is in flight, and something was
  /// answered or let go since the last trim (or none was done yet).
  mutating func due(activity: Int, inFlight: Int, held: Int) -> Bool {
    defer { lastActivity = activity }
    guard inFlight == 0, activity == lastActivity else { return false }
    if let last = trimmedAt, last.activity == activity, last.held == held { return false }
    trimmedAt = (activity, held)
    return true
  }

  /// How often the control thread looks, in seconds.
  static let tick = 5.0

  /// Returns the free memory malloc holds to the kernel (all arenas).
  static func releaseFreeMemory() { _ = ap_release_free_memory() }
}

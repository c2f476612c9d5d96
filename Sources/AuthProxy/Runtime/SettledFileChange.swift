/// Watches a polled file for a change that has settled: a new version is reported once it has
/// stayed the same for a whole poll interval, so that a file rewritten in place (truncated, then
/// written) is read complete, not half-way. A file missing for a moment (a swap under way) is
/// looked at again at the next poll. Used for the credentials file and the apps file.
struct SettledFileChange {
  enum Verdict: Equatable {
    /// The version last reported, or no file just now.
    case unchanged
    /// Another version, not yet the same for a whole interval (`first`: seen for the first time).
    case settling(first: Bool)
    /// Another version that stayed the same since the last poll: read it now.
    case settled
  }

  private var lastSeen: FileStamp?
  private var settling: FileStamp?

  init(path: String) { lastSeen = FileStamp(path: path) }

  mutating func poll(path: String) -> Verdict {
    guard let stamp = FileStamp(path: path) else { return .unchanged }
    guard stamp != lastSeen else {
      settling = nil
      return .unchanged
    }
    if stamp == settling {
      lastSeen = stamp
      settling = nil
      return .settled
    }
    let first = settling == nil
    settling = stamp
    return .settling(first: first)
  }
}

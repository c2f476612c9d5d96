import Synchronization

/// The control thread's own counters (token work, alerts): touched by that thread only.
final class ControlMetrics {
  var logins: [String: Int] = [:]  // by result
  var refreshes: [String: Int] = [:]
  var logouts: [String: Int] = [:]
  var alerts: [String: Int] = [:]  // by rule
  var sinkFailures: [String: Int] = [:]  // by sink
  var rotations: [String: Int] = [:]
  /// Redis token store: failures by reason (auth, timeout, unreachable, tls, failover,
  /// protocol) and whether it is connected now (nil: no Redis store).
  var tokenStoreFailures: [String: Int] = [:]
  var tokenStoreUp: Bool?
  var sourceFailures = 0  // reads of a polled credential source (db:) that could not reach it
}

/// One app of `--apps-file` (issue 21): its name, how it is known (the SHA-256 of the key it
/// sends, or its uid on a Unix-socket listener), the routes it may call and its limits. The
/// limits are parsed and checked here and carried to the workers; the limiter reads them.
public struct AppRule: Sendable, Equatable {
  public let name: String
  /// SHA-256 of the app's key (32 bytes); the key itself is never held.
  public let keySHA256: [UInt8]?
  /// The peer uid on a Unix-socket listener (`SO_PEERCRED`).
  public let uid: UInt32?
  /// nil: every route `--allow-route` allows.
  public let routes: RouteSet?
  /// `rate_limit`: requests per second ("R/s", or "R/m" divided by 60).
  public let ratePerSecond: Double?
  /// `burst`: requests above the rate allowed at once.
  public let burst: Int?
  /// `max_concurrency`: requests of this app upstream at once.
  public let maxConcurrency: Int?
}

extension AppRule {
  /// The app's own upstream limits (`rate_limit`, `burst`, `max_concurrency`); nil when it has
  /// none, so that an app without limits costs nothing at admission.
  var limits: UpstreamLimits? {
    let limits = UpstreamLimits(maxConcurrency: maxConcurrency, ratePerSecond: ratePerSecond, burst: burst)
    return limits.isEmpty ? nil : limits
  }
}

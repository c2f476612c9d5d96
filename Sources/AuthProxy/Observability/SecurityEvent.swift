/// Something the security monitor counts. Sendable, so a worker can post it to the thread
/// that owns the monitor.
public enum SecurityEvent: Sendable, Equatable {
  /// The upstream answered a forwarded request; only 401 and 403 count. `path` has no query
  /// string. `ipWhitelist`: the 403 was the API's IP-whitelist refusal (see `isIPWhitelistRefusal`).
  case upstreamAnswer(status: Int, path: String, ipWhitelist: Bool = false, app: String? = nil)
  /// A login failed; `reason` is secret-free (e.g. `TokenFailure.description`).
  case loginFailed(reason: String)
  case refreshFailed(reason: String)
  /// A credential rotation could not complete (the old credentials stay in use).
  case rotationFailed(reason: String)
  /// Access-log lines could not be written (the audit trail has a gap or may get one).
  case auditLogFailed(reason: String)
  /// A call refused by `--allow-route` or an app's routes; `path` has no query string.
  case routeDenied(app: String?, method: String, path: String)

  /// The rule this event counts towards, if any.
  public var rule: SecurityAlert.Rule? {
    switch self {
    case .upstreamAnswer(401, _, _, _): .failedAuth
    case .upstreamAnswer(403, _, _, _): .forbiddenAccess
    case .upstreamAnswer: nil
    case .loginFailed, .refreshFailed: .loginFailure
    case .rotationFailed: .rotationFailure
    case .auditLogFailed: .auditLogFailure
    case .routeDenied: .routeDenied
    }
  }
}

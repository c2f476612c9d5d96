/// The live security monitor of SPEC §7, between the access log and the alert sinks: counts
/// events per rule in a sliding window and says when a rule's threshold is reached. One alert
/// per rule per window: after firing, a rule stays quiet until a whole window has passed.
///
/// A pure value: no I/O, no clock of its own (every call takes `now`, wall-clock seconds), no
/// thread of its own. Keep it on one thread (the control loop) or in a `Mutex`.
/// Memory is bounded: each rule keeps at most `max(threshold, sampleLimit)` recent events.
public struct SecurityMonitor: Sendable {
  /// How many events make an alert, per rule.
  public struct Thresholds: Sendable, Equatable {
    /// `--alert-401-threshold`
    public var failedAuth = 10
    /// `--alert-403-threshold`
    public var forbiddenAccess = 5
    /// `--alert-login-failure-threshold`: failed logins or refreshes.
    public var loginFailure = 3
    /// Any rotation that could not complete.
    public var rotationFailure = 1
    /// Any failure to write the access log.
    public var auditLogFailure = 1
    /// `--alert-route-denied-threshold`: calls refused by route rules.
    public var routeDenied = 10

    public init(failedAuth: Int = 10, forbiddenAccess: Int = 5, loginFailure: Int = 3, rotationFailure: Int = 1) {
      self.failedAuth = failedAuth
      self.forbiddenAccess = forbiddenAccess
      self.loginFailure = loginFailure
      self.rotationFailure = rotationFailure
    }

    public subscript(rule: SecurityAlert.Rule) -> Int {
      switch rule {
      case .failedAuth: failedAuth
      case .forbiddenAccess: forbiddenAccess
      case .loginFailure: loginFailure
      case .rotationFailure: rotationFailure
      case .auditLogFailure: auditLogFailure
      case .routeDenied: routeDenied
      }
    }
  }

  /// The largest threshold accepted (larger ones are clamped): it bounds the memory of a rule.
  public static let maxThreshold = 100_000
  /// Events kept per rule beyond the threshold, so the count reported is exact up to this many.
  public static let sampleLimit = 1024
  /// Paths and reasons are cut to this many characters.
  static let labelLimit = 256

  public let window: Double
  public let thresholds: Thresholds
  public let host: String
  /// One per rule, in `Rule.allCases` order; mutated in place (a copy would copy the ring).
  private var states: [RuleState] = []

  public init(window: Double = 900, thresholds: Thresholds = Thresholds(), host: String = SecurityAlert.hostName()) {
    self.window = max(window, 0.001)
    var clamped = thresholds
    clamped.failedAuth = min(max(1, thresholds.failedAuth), Self.maxThreshold)
    clamped.forbiddenAccess = min(max(1, thresholds.forbiddenAccess), Self.maxThreshold)
    clamped.loginFailure = min(max(1, thresholds.loginFailure), Self.maxThreshold)
    clamped.rotationFailure = min(max(1, thresholds.rotationFailure), Self.maxThreshold)
    clamped.auditLogFailure = min(max(1, thresholds.auditLogFailure), Self.maxThreshold)
    clamped.routeDenied = min(max(1, thresholds.routeDenied), Self.maxThreshold)
    self.thresholds = clamped
    self.host = host
    states = SecurityAlert.Rule.allCases.map { RuleState(capacity: max(clamped[$0], Self.sampleLimit)) }
  }

  /// Counts `event` at `now`; returns the alert when this event makes its rule fire.
  public mutating func record(_ event: SecurityEvent, now: Double) -> SecurityAlert? {
    guard let rule = event.rule, let index = SecurityAlert.Rule.allCases.firstIndex(of: rule) else { return nil }
    let sample: Sample
    switch event {
    case .upstreamAnswer(_, let path, let ipWhitelist, let app):
      // A query string may hold a secret: never keep one, whatever the caller passed.
      let bare = path.prefix { $0 != "?" }
      sample = Sample(time: now, label: String(bare.prefix(Self.labelLimit)), flag: ipWhitelist, app: app.map { String($0.prefix(64)) })
    case .loginFailed(let reason):
      sample = Sample(time: now, label: "login failed: " + reason.prefix(Self.labelLimit), flag: false)
    case .refreshFailed(let reason):
      sample = Sample(time: now, label: "refresh failed: " + reason.prefix(Self.labelLimit), flag: true)
    case .rotationFailed(let reason), .auditLogFailed(let reason):
      sample = Sample(time: now, label: String(reason.prefix(Self.labelLimit)), flag: false)
    case .routeDenied(let app, let method, let path):
      let bare = path.prefix { $0 != "?" }
      sample = Sample(
        time: now, label: String((method + " " + bare).prefix(Self.labelLimit)), flag: false, app: app.map { String($0.prefix(64)) })
    }
    states[index].append(sample)
    states[index].expire(before: now - window)
    let quiet = states[index].firedAt.map { now < $0 + window } ?? false
    guard !quiet && states[index].count >= thresholds[rule] else { return nil }
    states[index].firedAt = now
    return makeAlert(rule, state: states[index], now: now)
  }

  /// Counts a finished request from its access-log entry, at the entry's time.
  public mutating func record(_ entry: AccessLogEntry, ipWhitelist: Bool = false) -> SecurityAlert? {
    guard let status = entry.upstreamStatus, status == 401 || status == 403 else { return nil }
    return record(.upstreamAnswer(status: status, path: entry.path, ipWhitelist: ipWhitelist, app: entry.app), now: entry.ts)
  }

  /// Events of `rule` in the window ending at `now` (exact up to `max(threshold, sampleLimit)`).
  public func count(_ rule: SecurityAlert.Rule, now: Double) -> Int {
    SecurityAlert.Rule.allCases.firstIndex(of: rule).map { states[$0].count(after: now - window) } ?? 0
  }

  /// Events held in memory over all rules (the memory bound is what tests check).
  public var retainedEvents: Int { states.reduce(0) { $0 + $1.count } }

  /// True when the upstream's 403 `body` is the API's IP-whitelist refusal (SPEC §1: code
  /// `FORBIDDEN`, "IP address not authorized"). Decided on the code, never the message text.
  public static func isIPWhitelistRefusal(status: Int, body: [UInt8]) -> Bool {
    guard status == 403, let code = APIResponse.errorCode(from: body)?.uppercased() else { return false }
    return code == "FORBIDDEN" || code == "IP_NOT_ALLOWED"
  }

  private func makeAlert(_ rule: SecurityAlert.Rule, state: RuleState, now: Double) -> SecurityAlert {
    let samples = state.samples
    var alert = SecurityAlert(
      rule: rule, count: samples.count, threshold: thresholds[rule], windowSeconds: window, time: now, host: host)
    switch rule {
    case .failedAuth:
      alert.topPaths = SecurityAlert.top(samples.map(\.label), limit: 5)
      alert.topApps = SecurityAlert.top(samples.compactMap(\.app), limit: 5)
    case .forbiddenAccess:
      alert.topPaths = SecurityAlert.top(samples.map(\.label), limit: 5)
      alert.topApps = SecurityAlert.top(samples.compactMap(\.app), limit: 5)
      alert.ipWhitelist = samples.contains { $0.flag }
    case .loginFailure:
      let refreshes = samples.filter(\.flag).count
      alert.detail = "\(samples.count - refreshes) failed logins, \(refreshes) failed refreshes; last: \(samples.last?.label ?? "")"
    case .rotationFailure:
      alert.detail = "The old credentials stay in use. Last failure: \(samples.last?.label ?? "")"
    case .auditLogFailure:
      alert.detail =
        "Access-log lines wait in memory and are retried; past --access-log-buffer they are dropped and counted "
        + "(authproxy_access_log_dropped_lines_total). Last failure: \(samples.last?.label ?? "")"
    case .routeDenied:
      alert.topPaths = SecurityAlert.top(samples.map(\.label), limit: 5)
      alert.topApps = SecurityAlert.top(samples.compactMap(\.app), limit: 5)
      alert.detail = "Apps called routes that --allow-route or their routes in --apps-file do not allow"
    }
    return alert
  }
}

/// One counted event: when, its path or reason, and a rule-specific flag (IP-whitelist 403;
/// refresh rather than login).
private struct Sample: Sendable {
  var time: Double
  var label: String
  var flag: Bool
  /// The app of `--apps-file` behind the event, when known.
  var app: String? = nil
}

/// A rule's recent events in arrival order, in a fixed-capacity ring (oldest overwritten).
private struct RuleState: Sendable {
  private var ring: [Sample] = []
  private var head = 0
  private(set) var count = 0
  let capacity: Int
  var firedAt: Double?

  init(capacity: Int) { self.capacity = capacity }

  mutating func append(_ sample: Sample) {
    if count < ring.count {
      // A free slot (left by expired events) after the newest one.
      ring[(head + count) % ring.count] = sample
      count += 1
    } else if ring.count < capacity {
      if head != 0 {
        ring = samples
        head = 0
      }
      ring.append(sample)
      count += 1
    } else {
      // Full: the newest overwrites the oldest.
      ring[head] = sample
      head = (head + 1) % ring.count
    }
  }

  /// Drops events at or before `cutoff` (events arrive nearly in time order).
  mutating func expire(before cutoff: Double) {
    while count > 0, ring[head].time <= cutoff {
      head = (head + 1) % ring.count
      count -= 1
    }
    if count == 0 {
      ring.removeAll(keepingCapacity: ring.count < 64)
      head = 0
    }
  }

  func count(after cutoff: Double) -> Int {
    (0..<count).reduce(0) { $0 + (ring[(head + $1) % ring.count].time > cutoff ? 1 : 0) }
  }

  var samples: [Sample] { (0..<count).map { ring[(head + $0) % ring.count] } }
}

import Glibc

/// One alert of the security monitor (SPEC §7): what the diagnostic log, the webhook and the
/// alert command receive. Holds counts, paths without query strings and host names only: never
/// a token, a credential or upstream text.
public struct SecurityAlert: Sendable, Equatable {
  /// The alert rules of SPEC §7; the raw value is the name every sink shows.
  public enum Rule: String, Sendable, CaseIterable, Comparable {
    case failedAuth = "failed_auth"
    case forbiddenAccess = "forbidden_access"
    case loginFailure = "login_failure"
    case rotationFailure = "rotation_failure"
    case auditLogFailure = "audit_log_failure"
    case routeDenied = "route_denied"

    public static func < (a: Rule, b: Rule) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }

    /// What the rule counts, for messages.
    public var counts: String {
      switch self {
      case .failedAuth: "upstream 401 answers"
      case .forbiddenAccess: "upstream 403 answers"
      case .loginFailure: "failed logins or refreshes"
      case .rotationFailure: "failed credential rotations"
      case .auditLogFailure: "failed access-log writes"
      case .routeDenied: "calls refused by route rules"
      }
    }
  }

  /// A path and how often it was seen among the counted events.
  public struct PathCount: Sendable, Equatable {
    public var path: String
    public var count: Int
    public init(path: String, count: Int) {
      self.path = path
      self.count = count
    }
  }

  public var rule: Rule
  /// Events counted in the window when the alert fired.
  public var count: Int
  public var threshold: Int
  public var windowSeconds: Double
  /// Wall-clock seconds since the epoch.
  public var time: Double
  public var host: String
  /// `forbidden_access` only: at least one of the 403s was the API's IP-whitelist refusal,
  /// which usually means the egress IP changed.
  public var ipWhitelist: Bool?
  /// The most frequent paths (no query strings) behind the counted events, most frequent first.
  public var topPaths: [PathCount]
  /// The most frequent clients behind the counted events (access-log scans only).
  public var topClients: [PathCount]
  /// Extra, secret-free detail (e.g. the last login failure's reason).
  public var detail: String?
  /// The apps of `--apps-file` behind the counted events, most frequent first.
  public var topApps: [PathCount] = []

  public init(
    rule: Rule, count: Int, threshold: Int, windowSeconds: Double, time: Double, host: String, ipWhitelist: Bool? = nil,
    topPaths: [PathCount] = [], topClients: [PathCount] = [], detail: String? = nil
  ) {
    self.rule = rule
    self.count = count
    self.threshold = threshold
    self.windowSeconds = windowSeconds
    self.time = time
    self.host = host
    self.ipWhitelist = ipWhitelist
    self.topPaths = topPaths
    self.topClients = topClients
    self.detail = detail
  }

  /// The human message: the log line, the command's stdin, the webhook's `message`.
  public var message: String {
    var text =
      "authproxy alert \(rule.rawValue) on \(host): \(count) \(rule.counts) in the last \(SecurityAlert.formatDuration(windowSeconds)) (threshold \(threshold)) at \(RFC3339.format(time, milliseconds: false))"
    if ipWhitelist == true {
      text +=
        ". The API refused this host's IP address (IP-whitelist answer): the egress IP probably changed; add it to the account's whitelist"
    }
    if let detail { text += ". \(detail)" }
    if !topPaths.isEmpty { text += ". Top paths: " + topPaths.map { "\($0.path) (\($0.count))" }.joined(separator: ", ") }
    if !topClients.isEmpty { text += ". Top clients: " + topClients.map { "\($0.path) (\($0.count))" }.joined(separator: ", ") }
    if !topApps.isEmpty { text += ". Top apps: " + topApps.map { "\($0.path) (\($0.count))" }.joined(separator: ", ") }
    return text
  }

  /// The webhook body: one JSON object. `text` repeats the message so chat webhooks (Slack,
  /// Mattermost) show it as is.
  public func jsonBody() -> String {
    func list(_ items: [PathCount], key: String) -> String {
      "[" + items.map { JSONText.object([(key, JSONText.quoted($0.path)), ("count", String($0.count))]) }.joined(separator: ",") + "]"
    }
    var members: [(String, String)] = [
      ("rule", JSONText.quoted(rule.rawValue)), ("count", String(count)), ("threshold", String(threshold)),
      ("window", JSONText.quoted(SecurityAlert.formatDuration(windowSeconds))),
      ("window_seconds", String(Int(windowSeconds.rounded()))), ("time", JSONText.quoted(RFC3339.format(time))),
      ("host", JSONText.quoted(host)),
    ]
    if let ipWhitelist { members.append(("ip_whitelist", ipWhitelist ? "true" : "false")) }
    if !topPaths.isEmpty { members.append(("top_paths", list(topPaths, key: "path"))) }
    if !topClients.isEmpty { members.append(("top_clients", list(topClients, key: "client"))) }
    if !topApps.isEmpty { members.append(("top_apps", list(topApps, key: "app"))) }
    members.append(("message", JSONText.quoted(message)))
    members.append(("text", JSONText.quoted(message)))
    return JSONText.object(members)
  }

  /// `15m`, `1h`, `90s`, `1h30m`: how the flags write durations.
  public static func formatDuration(_ seconds: Double) -> String {
    let millis = Int((seconds * 1000).rounded())
    if millis % 1000 != 0 || millis == 0 { return "\(millis)ms" }
    let whole = millis / 1000
    var parts = ""
    let hours = whole / 3600
    let minutes = whole % 3600 / 60
    let rest = whole % 60
    if hours > 0 { parts += "\(hours)h" }
    if minutes > 0 { parts += "\(minutes)m" }
    if rest > 0 { parts += "\(rest)s" }
    return parts
  }

  /// This machine's host name, for the `host` field.
  public static func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
    let name = String(cBuffer: buffer)
    return name.isEmpty ? "unknown" : name
  }

  /// The `limit` most frequent values, most frequent first (ties by name, so output is stable).
  public static func top(_ values: some Sequence<String>, limit: Int) -> [PathCount] {
    var counts: [String: Int] = [:]
    for value in values { counts[value, default: 0] += 1 }
    return counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(limit).map {
      PathCount(path: $0.key, count: $0.value)
    }
  }
}

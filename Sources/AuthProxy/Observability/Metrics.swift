import Synchronization

/// A counter a worker increments and the control thread reads.
final class Counter: Sendable {
  private let value = Atomic<Int>(0)
  init() {}
  func add(_ amount: Int) { value.add(amount, ordering: .relaxed) }
  /// For a gauge its owner sets.
  func store(_ amount: Int) { value.store(amount, ordering: .relaxed) }
  var current: Int { value.load(ordering: .relaxed) }
}

/// Renders the Prometheus text exposition format (version 0.0.4).
struct MetricsExposition {
  private var lines: [String] = []

  mutating func family(_ name: String, _ type: String, _ help: String) {
    lines.append("# HELP \(name) \(help)")
    lines.append("# TYPE \(name) \(type)")
  }

  mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
    let text = value.isFinite && value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    sample(name, labels, text)
  }

  mutating func sample(_ name: String, _ labels: [(String, String)], _ value: String) {
    let rendered =
      labels.isEmpty ? "" : "{" + labels.map { "\($0.0)=\"\(MetricsExposition.escape($0.1))\"" }.joined(separator: ",") + "}"
    lines.append("\(name)\(rendered) \(value)")
  }

  static func escape(_ value: String) -> String {
    var out = ""
    for character in value {
      switch character {
      case "\\": out += "\\\\"
      case "\"": out += "\\\""
      case "\n": out += "\\n"
      default: out.append(character)
      }
    }
    return out
  }

  var text: String { lines.joined(separator: "\n") + "\n" }

  /// Everything SPEC §5 names, summed over the workers.
  static func render(
    workers: [WorkerMetrics], control: ControlMetrics, tokenExpiresIn: Double?, credentialAge: Double?, ready: Bool,
    accessLog: AccessLogSink.Stats = AccessLogSink.Stats()
  ) -> String {
    var out = MetricsExposition()
    out.family("authproxy_requests_total", "counter", "Requests answered to apps, by method and status class.")
    for (m, method) in WorkerMetrics.methods.enumerated() {
      for (c, statusClass) in WorkerMetrics.statusClasses.enumerated() {
        let total = workers.reduce(0) { $0 + $1.requests[m * WorkerMetrics.statusClasses.count + c].current }
        if total > 0 { out.sample("authproxy_requests_total", [("method", method), ("status_class", statusClass)], Double(total)) }
      }
    }
    out.family("authproxy_upstream_latency_seconds", "histogram", "Upstream attempt durations.")
    var cumulative = 0
    for (index, bound) in (WorkerMetrics.latencyBuckets.map { String($0) } + ["+Inf"]).enumerated() {
      cumulative += workers.reduce(0) { $0 + $1.latency[index].current }
      out.sample("authproxy_upstream_latency_seconds_bucket", [("le", bound)], Double(cumulative))
    }
    let sum = workers.reduce(0) { $0 + $1.latencySumMicros.current }
    out.sample("authproxy_upstream_latency_seconds_sum", [], Double(sum) / 1_000_000)
    out.sample("authproxy_upstream_latency_seconds_count", [], Double(cumulative))
    func gauge(_ name: String, _ help: String, _ value: Double) {
      out.family(name, "gauge", help)
      out.sample(name, [], value)
    }
    func counter(_ name: String, _ help: String, _ pick: (WorkerMetrics) -> Int) {
      out.family(name, "counter", help)
      out.sample(name, [], Double(workers.reduce(0) { $0 + pick($1) }))
    }
    gauge("authproxy_in_flight_requests", "Requests being answered now.", Double(workers.reduce(0) { $0 + $1.inFlight.current }))
    counter("authproxy_retries_total", "Upstream attempts that were retries.") { $0.retries.current }
    counter("authproxy_upstream_connections_total", "Upstream connections opened (TLS handshakes).") { $0.upstreamConnections.current }
    gauge(
      "authproxy_upstream_idle_connections", "Upstream connections kept open for the next request.",
      Double(workers.reduce(0) { $0 + $1.upstreamIdle.current }))
    gauge(
      "authproxy_upstream_recent_peak_connections",
      "The most upstream requests at once over the last 10 seconds; idle connections beyond it are closed.",
      Double(workers.reduce(0) { $0 + $1.upstreamRecentPeak.current }))
    gauge(
      "authproxy_upstream_queued_requests",
      "Upstream requests waiting for a connection under --max-upstream-connections (per worker) now.",
      Double(workers.reduce(0) { $0 + $1.upstreamQueued.current }))
    counter(
      "authproxy_upstream_reuse_failures_total",
      "POST/PATCH without an Idempotency-Key whose reused connection broke before any answer (502, not sent again)."
    ) { $0.unsafeReuseFailures.current }
    gauge(
      "authproxy_admission_queued", "Requests waiting for --max-upstream-concurrency, --rate-limit or an upstream pause.",
      Double(workers.reduce(0) { $0 + $1.admissionQueued.current }))
    counter("authproxy_rate_limited_total", "Requests the proxy answered 429 itself (queue full or waited --timeout).") {
      $0.rateLimited.current
    }
    counter("authproxy_upstream_paused_total", "Upstream 429s with Retry-After that paused new upstream sends.") {
      $0.upstreamPaused.current
    }
    gauge(
      "authproxy_client_connections", "Client connections open now.", Double(workers.reduce(0) { $0 + $1.clientConnections.current }))
    out.family(
      "authproxy_worker_client_connections", "gauge", "Client connections each worker serves now (the workers share new ones by count).")
    for (index, worker) in workers.enumerated() {
      out.sample("authproxy_worker_client_connections", [("worker", String(index))], Double(worker.clientConnections.current))
    }
    out.family("authproxy_accept_paused_total", "counter", "Times the proxy listener paused accepting, by reason.")
    out.sample(
      "authproxy_accept_paused_total", [("reason", "max_connections")], Double(workers.reduce(0) { $0 + $1.pausedAtLimit.current }))
    out.sample(
      "authproxy_accept_paused_total", [("reason", "out_of_descriptors")],
      Double(workers.reduce(0) { $0 + $1.pausedOutOfResources.current }))
    AppMetrics.render(workers, into: &out)
    counter("authproxy_reauth_total", "Requests replayed after a 401 renewed the token.") { $0.reauths.current }
    counter("authproxy_rejected_requests_total", "Requests refused before parsing (framing, header timeout).") { $0.rejected.current }
    out.family("authproxy_upstream_auth_failures_total", "counter", "Upstream 401 and 403 answers.")
    out.sample("authproxy_upstream_auth_failures_total", [("status", "401")], Double(workers.reduce(0) { $0 + $1.upstream401.current }))
    out.sample("authproxy_upstream_auth_failures_total", [("status", "403")], Double(workers.reduce(0) { $0 + $1.upstream403.current }))
    for (name, help, values) in [
      ("authproxy_logins_total", "Logins by result.", control.logins),
      ("authproxy_refreshes_total", "Token refreshes by result.", control.refreshes),
      ("authproxy_logouts_total", "Logouts by result.", control.logouts),
      ("authproxy_rotations_total", "Credential rotations by result.", control.rotations),
    ] {
      out.family(name, "counter", help)
      for result in ["success", "failure"] { out.sample(name, [("result", result)], Double(values[result] ?? 0)) }
    }
    out.family(
      "authproxy_credential_source_failures_total", "counter", "Reads of a polled credential source (db:) that could not reach it.")
    out.sample("authproxy_credential_source_failures_total", [], Double(control.sourceFailures))
    out.family("authproxy_alerts_total", "counter", "Security alerts raised, by rule.")
    for rule in SecurityAlert.Rule.allCases.map(\.rawValue) {
      out.sample("authproxy_alerts_total", [("rule", rule)], Double(control.alerts[rule] ?? 0))
    }
    out.family("authproxy_alert_sink_failures_total", "counter", "Alert deliveries that failed, by sink.")
    for sink in ["webhook", "command"] {
      out.sample("authproxy_alert_sink_failures_total", [("sink", sink)], Double(control.sinkFailures[sink] ?? 0))
    }
    out.family("authproxy_access_log_dropped_lines_total", "counter", "Access-log lines that could not be written and were dropped.")
    out.sample("authproxy_access_log_dropped_lines_total", [], Double(accessLog.droppedLines))
    out.family("authproxy_access_log_write_errors_total", "counter", "Failed access-log writes, by cause.")
    for cause in ["no_space", "quota", "io", "too_large", "closed", "other"] {
      out.sample("authproxy_access_log_write_errors_total", [("cause", cause)], Double(accessLog.writeErrors[cause] ?? 0))
    }
    gauge(
      "authproxy_access_log_buffered_bytes", "Access-log bytes waiting in memory to be written.", Double(accessLog.bufferedBytes))
    gauge("authproxy_ready", "1 while a valid token is held.", ready ? 1 : 0)
    if let up = control.tokenStoreUp {
      gauge(
        "authproxy_token_store_up", "Whether the Redis token store is connected and accepts our credentials (1) or not (0).", up ? 1 : 0)
      out.family("authproxy_token_store_failures_total", "counter", "Redis token store failures, by reason.")
      for reason in ["auth", "timeout", "unreachable", "tls", "failover", "protocol"] {
        out.sample("authproxy_token_store_failures_total", [("reason", reason)], Double(control.tokenStoreFailures[reason] ?? 0))
      }
    }
    if let tokenExpiresIn {
      gauge("authproxy_token_expires_in_seconds", "Seconds until the access token expires.", tokenExpiresIn.rounded())
    }
    if let credentialAge {
      gauge("authproxy_credential_age_seconds", "Seconds since the credentials were last rotated.", credentialAge.rounded())
    }
    return out.text
  }
}

extension Result {
  var isSuccess: Bool {
    if case .success = self { return true }
    return false
  }
}

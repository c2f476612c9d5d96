import Synchronization

/// One worker's counters labelled by app (`--apps-file`): requests by status class, and calls
/// refused by route rules. Label values are bounded by the apps the file names (at most
/// `AppTable.maxApps`, plus "" for a call no app was identified for). Written by its worker,
/// read by the control thread at a scrape: the lock is contended only then.
final class AppMetrics: Sendable {
  private struct Key: Hashable {
    var family: UInt8  // 0: requests, 1: route denied
    var app: String
    var statusClass: Int
  }
  private let counts = Mutex<[Key: Int]>([:])

  func recordRequest(app: String, status: Int) {
    let c = min(max(status / 100 - 1, 0), WorkerMetrics.statusClasses.count - 1)
    counts.withLock { $0[Key(family: 0, app: app, statusClass: c), default: 0] += 1 }
  }

  func recordRouteDenied(app: String?) {
    counts.withLock { $0[Key(family: 1, app: app ?? "", statusClass: 0), default: 0] += 1 }
  }

  /// The app families, summed over `workers`; nothing when no request had an app.
  static func render(_ workers: [WorkerMetrics], into out: inout MetricsExposition) {
    var total: [Key: Int] = [:]
    for worker in workers {
      worker.apps.counts.withLock { counts in
        for (key, value) in counts { total[key, default: 0] += value }
      }
    }
    out.family("authproxy_app_requests_total", "counter", "Requests answered to the apps of --apps-file, by app and status class.")
    for key in total.keys.filter({ $0.family == 0 }).sorted(by: { ($0.app, $0.statusClass) < ($1.app, $1.statusClass) }) {
      out.sample(
        "authproxy_app_requests_total", [("app", key.app), ("status_class", WorkerMetrics.statusClasses[key.statusClass])],
        Double(total[key] ?? 0))
    }
    out.family(
      "authproxy_route_denied_total", "counter", "Calls refused by --allow-route or an app's routes (403 route_denied), by app.")
    for key in total.keys.filter({ $0.family == 1 }).sorted(by: { $0.app < $1.app }) {
      out.sample("authproxy_route_denied_total", [("app", key.app)], Double(total[key] ?? 0))
    }
  }
}

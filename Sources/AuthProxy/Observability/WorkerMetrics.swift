import Synchronization

/// One worker's counters. Written only by its worker (relaxed atomics, no lock and no line
/// shared with another worker's counters); read by the control thread when /metrics is scraped.
public final class WorkerMetrics: Sendable {
  static let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"]
  static let statusClasses = ["1xx", "2xx", "3xx", "4xx", "5xx"]
  /// Upper bounds of the upstream latency histogram, in seconds.
  static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

  let requests: [Counter]  // methods × statusClasses
  let latency: [Counter]  // one per bucket, plus +Inf
  let latencySumMicros = Counter()
  let inFlight = Counter()
  let retries = Counter()
  let reauths = Counter()
  let upstream401 = Counter()
  let upstream403 = Counter()
  let rejected = Counter()
  /// Upstream connections opened (each a TLS handshake), and those idle in the pool now.
  let upstreamConnections = Counter()
  let upstreamIdle = Counter()
  /// The most upstream attempts at once over the last ~10 s: the idle pool's size limit.
  let upstreamRecentPeak = Counter()
  /// Upstream attempts waiting for a connection under --max-upstream-connections now.
  let upstreamQueued = Counter()
  /// Requests that must not be sent twice whose reused connection broke before any answer:
  /// they may have reached the API, and were answered 502 without another attempt.
  let unsafeReuseFailures = Counter()
  /// Client connections open now, and the times accepting paused, by reason.
  let clientConnections = Counter()
  let pausedAtLimit = Counter()
  let pausedOutOfResources = Counter()
  /// By app of `--apps-file`: requests and route refusals.
  let apps = AppMetrics()
  /// Requests waiting in the admission queue now; our own 429s; upstream 429 pauses.
  let admissionQueued = Counter()
  let rateLimited = Counter()
  let upstreamPaused = Counter()

  public init() {
    requests = (0..<(Self.methods.count * Self.statusClasses.count)).map { _ in Counter() }
    latency = (0...Self.latencyBuckets.count).map { _ in Counter() }
  }

  /// Requests answered so far, whatever their method and status.
  var answered: Int { requests.reduce(0) { $0 + $1.current } }

  func recordRequest(method: String, status: Int) {
    let m = Self.methods.firstIndex(of: method) ?? Self.methods.count - 1
    let c = min(max(status / 100 - 1, 0), Self.statusClasses.count - 1)
    requests[m * Self.statusClasses.count + c].add(1)
  }

  func recordUpstream(seconds: Double, status: Int?) {
    let bucket = Self.latencyBuckets.firstIndex { seconds <= $0 } ?? Self.latencyBuckets.count
    latency[bucket].add(1)
    latencySumMicros.add(Int(seconds * 1_000_000))
    if status == 401 { upstream401.add(1) }
    if status == 403 { upstream403.add(1) }
  }
}

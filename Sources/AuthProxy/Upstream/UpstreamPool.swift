/// A worker's keep-alive connections to the upstream, and the attempts that use them.
///
/// The data path's own HTTP/1.1 client (libcurl stays for the control plane): connections are
/// `TLSClientSocket`s, one attempt at a time each, kept for reuse while the upstream allows it
/// and for at most `maxIdleAge` seconds of idleness. Idle connections keep their read event,
/// so one the upstream closes is closed at once and never given to the next request.
///
/// The upstream's addresses are looked up off the loop (`HostResolver`) and used for `dnsTTL`
/// seconds; after that, new connections go on using them while a fresh lookup runs, and a
/// lookup that fails keeps the last good answer (an outage of the name servers does not
/// become an outage of the proxy). Only when no answer was ever had do new connections wait
/// for one, at most `connectTimeout`.
public final class UpstreamPool {
  let loop: EventLoop
  private let context: TLSClientContext
  private let scratch = ReadScratch()
  private let host: String
  private let port: Int
  private let connectTimeout: Double
  private let maxIdleAge: Double
  private let maxIdle: Int
  /// Oldest first: the last one is the one that answered most recently.
  private var idle: [(socket: TLSClientSocket, since: Double)] = []
  /// Attempts running on this pool's connections now, and the most at once in each of the last
  /// `peaks.count` `expireIdle` periods (seconds): idle connections beyond that recent peak
  /// are closed, so the pool follows demand instead of staying at its highest.
  private var active = 0
  private var peaks: [Int]
  private var peakSlot = 0
  /// The last good answer, and when it came (nil: none yet).
  private var addresses: [SocketAddress] = []
  private var resolvedAt: Double?
  private var resolver: HostResolver!
  /// Attempts waiting for the first answer, and the timer that bounds their wait.
  private var waiting: [(transfer: UpstreamTransfer, since: Double)] = []
  private var waitTimer: Timer!
  /// Where new connections and the idle count are reported (`/metrics`).
  private let metrics: WorkerMetrics?
  private var reportedIdle = 0
  /// How long a DNS answer is used before asking again.
  private let dnsTTL: Double
  /// What idle expiry, the reuse window and the DNS answer's age read.
  let clock: any MonotonicClock

  public init(
    loop: EventLoop, tls: UpstreamTLS, host: String, port: Int, connectTimeout: Double, maxIdleAge: Double = 30, maxIdle: Int = 256,
    metrics: WorkerMetrics? = nil, trust: TrustStore? = nil, dnsTTL: Double = 30, peakWindow: Int = 10,
    lookup: @escaping HostResolver.Lookup = SocketAddress.resolve, clock: any MonotonicClock = SystemMonotonicClock()
  ) throws(EventError) {
    self.clock = clock
    peaks = Array(repeating: 0, count: max(1, peakWindow))
    self.metrics = metrics
    self.loop = loop
    context = try TLSClientContext(tls, trust: trust)
    self.host = host
    self.port = port
    self.connectTimeout = connectTimeout
    self.maxIdleAge = maxIdleAge
    self.maxIdle = maxIdle
    self.dnsTTL = dnsTTL
    resolver = try HostResolver(loop: loop, host: host, port: port, lookup: lookup) { [unowned self] answer in
      self.answered(answer)
    }
    waitTimer = Timer(loop: loop) { [unowned self] in self.expireWaiting() }
  }

  deinit {
    for entry in idle { entry.socket.discard() }
    metrics?.upstreamIdle.add(-reportedIdle)
    metrics?.upstreamRecentPeak.add(-reportedPeak)
  }

  private var reportedPeak = 0
  /// The most attempts at once over the recent window: what the idle pool is sized by.
  var recentPeak: Int { peaks.max() ?? 0 }
  /// Connections idle now (tests).
  var idleCount: Int { idle.count }

  /// Brings the idle-connections gauge to `idle.count`.
  private func reportIdle() {
    guard let metrics, idle.count != reportedIdle else { return }
    metrics.upstreamIdle.add(idle.count - reportedIdle)
    reportedIdle = idle.count
  }

  /// Starts an attempt: on the idle connection that answered last unless
  /// `transfer.freshConnection` or it has been idle longer than `transfer.reuseWithin`, else on
  /// a new one.
  public func start(_ transfer: UpstreamTransfer) {
    let now = clock.seconds()
    defer { reportIdle() }
    if !transfer.freshConnection {
      while let entry = idle.last {
        // Closed while idle (by the upstream, or by bytes nobody asked for): skipped.
        if entry.socket.state != .open || now - entry.since > maxIdleAge {
          idle.removeLast()
          entry.socket.discard()
          continue
        }
        // The most recent is too old for this request: so are the others; they stay for
        // requests that may be sent again.
        guard now - entry.since <= transfer.reuseWithin else { break }
        idle.removeLast()
        attemptStarted()
        transfer.run(on: entry.socket, pool: self, reused: true)
        return
      }
    }
    if resolvedAt.map({ now - $0 > dnsTTL }) ?? true { resolver.resolve() }
    guard !addresses.isEmpty else {
      waiting.append((transfer, now))
      if !waitTimer.isPending { waitTimer.schedule(after: connectTimeout) }
      return
    }
    connect(transfer)
  }

  private func connect(_ transfer: UpstreamTransfer) {
    let socket = TLSClientSocket(
      loop: loop, context: context, scratch: scratch, host: host, addresses: addresses, timeout: connectTimeout)
    metrics?.upstreamConnections.add(1)
    attemptStarted()
    transfer.run(on: socket, pool: self, reused: false)
  }

  private func attemptStarted() {
    active += 1
    if active > peaks[peakSlot] { peaks[peakSlot] = active }
  }

  /// An attempt that ran on one of this pool's connections ended (its connection is back in
  /// `idle` or gone).
  func attemptEnded() { active = max(0, active - 1) }

  /// A lookup's answer: kept if there is one; the attempts waiting for it connect, or fail as
  /// unresolvable.
  private func answered(_ answer: [SocketAddress]) {
    if !answer.isEmpty {
      addresses = answer
      resolvedAt = clock.seconds()
    }
    let ready = waiting
    waiting = []
    waitTimer.cancel()
    for entry in ready where !entry.transfer.isFinished {
      if addresses.isEmpty { entry.transfer.fail(.unresolvable) } else { connect(entry.transfer) }
    }
  }

  /// Attempts that waited `connectTimeout` for a lookup still under way fail as a connect that
  /// timed out; the lookup goes on for the next ones.
  private func expireWaiting() {
    let now = clock.seconds()
    // Oldest first (appended as they came): the expired ones are a prefix.
    let expiredCount = waiting.firstIndex { now - $0.since < connectTimeout } ?? waiting.count
    let expired = waiting.prefix(expiredCount)
    waiting.removeFirst(expiredCount)
    if let oldest = waiting.first { waitTimer.schedule(after: connectTimeout - (now - oldest.since)) }
    for entry in expired where !entry.transfer.isFinished { entry.transfer.fail(.timedOut) }
  }

  /// Takes back a connection whose last response ended cleanly and allows another request.
  func release(_ socket: TLSClientSocket) {
    guard socket.state == .open, socket.pendingOutput == 0, idle.count < maxIdle else {
      socket.discard()
      return
    }
    // No delegate while idle: the socket closes itself if anything arrives, and start() or
    // expireIdle() drops it once closed.
    socket.delegate = nil
    // A response that ended from bytes held during a pause leaves the socket paused: idle, it
    // would not see the upstream close it, and the next request's answer would never be read.
    socket.resumeReading()
    idle.append((socket, clock.seconds()))
    reportIdle()
  }

  /// Drops idle connections older than `maxIdleAge`, and those beyond the recent peak of
  /// attempts at once (oldest first), and frees the TLS buffers of those idle for more than a
  /// second (called every second).
  public func expireIdle() {
    let now = clock.seconds()
    idle.removeAll { entry in
      guard entry.socket.state != .open || now - entry.since > maxIdleAge else {
        if now - entry.since > 1 { entry.socket.releaseBuffers() }
        return false
      }
      entry.socket.discard()
      return true
    }
    let wanted = max(0, recentPeak - active)
    if idle.count > wanted {
      for entry in idle.prefix(idle.count - wanted) { entry.socket.discard() }
      idle.removeFirst(idle.count - wanted)
    }
    peakSlot = (peakSlot + 1) % peaks.count
    peaks[peakSlot] = active
    reportIdle()
    if let metrics, recentPeak != reportedPeak {
      metrics.upstreamRecentPeak.add(recentPeak - reportedPeak)
      reportedPeak = recentPeak
    }
  }
}

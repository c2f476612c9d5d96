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
///
/// With `maxConnections` (`--max-upstream-connections`, per worker; 0: no cap) the pool never
/// holds more connections than that, busy and idle together (nginx's and HAProxy's `server
/// maxconn`). An attempt that finds none it may use and no room waits in FIFO order: a
/// connection that finishes an exchange goes straight to the first waiter (or is closed to make
/// room for it, if that waiter needs a new one), and a connection that closes makes room for
/// the next. A waiter gives up when its `stallTimeout` has passed since it was made
/// (`UpstreamError.queueTimedOut`, a 504): the wait counts against `--timeout` like the wait
/// for the answer's head.
public final class UpstreamPool {
  let loop: EventLoop
  private let context: TLSClientContext
  private let scratch = ReadScratch()
  private let host: String
  private let port: Int
  private let connectTimeout: Double
  private let maxIdleAge: Double
  private let maxIdle: Int
  /// Most connections, busy and idle (0: no cap).
  let maxConnections: Int
  /// Attempts waiting for a connection under `maxConnections`, in arrival order from
  /// `queueHead` (cancelled ones stay until they reach the head or the next sweep), how many of
  /// them still wait, and the timer for the first one's deadline.
  private var queue: [UpstreamTransfer] = []
  private var queueHead = 0
  private var queuedCount = 0
  private var reportedQueued = 0
  private var queueTimer: Timer!
  private var servingQueue = false
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
    maxConnections: Int = 0, metrics: WorkerMetrics? = nil, trust: TrustStore? = nil, dnsTTL: Double = 30, peakWindow: Int = 10,
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
    self.maxConnections = max(0, maxConnections)
    self.dnsTTL = dnsTTL
    resolver = try HostResolver(loop: loop, host: host, port: port, lookup: lookup) { [unowned self] answer in
      self.answered(answer)
    }
    waitTimer = Timer(loop: loop) { [unowned self] in self.expireWaiting() }
    queueTimer = Timer(loop: loop) { [unowned self] in self.expireQueued() }
  }

  deinit {
    for entry in idle { entry.socket.discard() }
    metrics?.upstreamIdle.add(-reportedIdle)
    metrics?.upstreamRecentPeak.add(-reportedPeak)
    metrics?.upstreamQueued.add(-reportedQueued)
  }

  private var reportedPeak = 0
  /// The most attempts at once over the recent window: what the idle pool is sized by.
  var recentPeak: Int { peaks.max() ?? 0 }
  /// Connections idle now (tests).
  var idleCount: Int { idle.count }
  /// Attempts waiting for a connection under `maxConnections` now.
  var queuedNow: Int { queuedCount }
  /// Connections open now or being opened: busy (one attempt each) and idle.
  var openConnections: Int { active + idle.count }
  /// What counts against `maxConnections`: busy, idle, and about to connect once the name
  /// resolves.
  private var occupied: Int { active + idle.count + waiting.count }

  /// Brings the idle-connections gauge to `idle.count`.
  private func reportIdle() {
    guard let metrics, idle.count != reportedIdle else { return }
    metrics.upstreamIdle.add(idle.count - reportedIdle)
    reportedIdle = idle.count
  }

  /// Starts an attempt: on the idle connection that answered last unless
  /// `transfer.freshConnection` or it has been idle longer than `transfer.reuseWithin`, else on
  /// a new one; at `maxConnections`, after the attempts already waiting (FIFO).
  public func start(_ transfer: UpstreamTransfer) {
    defer {
      reportIdle()
      reportQueued()
    }
    dropCancelledHead()
    if queuedCount > 0 || !place(transfer, now: clock.seconds()) { enqueue(transfer) }
  }

  /// Runs `transfer` on an idle connection it may use, or a new one if there is room (closing
  /// an idle one it may not use to make it); false if it must wait.
  private func place(_ transfer: UpstreamTransfer, now: Double) -> Bool {
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
        return true
      }
    }
    if maxConnections > 0 && occupied >= maxConnections {
      // At the cap: an idle connection this attempt may not use gives its place (the oldest).
      guard !idle.isEmpty else { return false }
      idle.removeFirst().socket.discard()
    }
    if resolvedAt.map({ now - $0 > dnsTTL }) ?? true { resolver.resolve() }
    guard !addresses.isEmpty else {
      waiting.append((transfer, now))
      if !waitTimer.isPending { waitTimer.schedule(after: connectTimeout) }
      return true
    }
    connect(transfer)
    return true
  }

  private func enqueue(_ transfer: UpstreamTransfer) {
    transfer.queuedIn = self
    queue.append(transfer)
    queuedCount += 1
    if !queueTimer.isPending { scheduleQueueTimer(now: clock.seconds()) }
  }

  /// Takes the first attempt still waiting off the queue (nil: none).
  private func dequeue() -> UpstreamTransfer? {
    dropCancelledHead()
    guard queueHead < queue.count else { return nil }
    let transfer = queue[queueHead]
    queueHead += 1
    queuedCount -= 1
    transfer.queuedIn = nil
    compactQueue()
    return transfer
  }

  /// Cancelled attempts at the front of the queue are dropped (they were counted out already).
  private func dropCancelledHead() {
    while queueHead < queue.count && queue[queueHead].queuedIn == nil { queueHead += 1 }
    compactQueue()
  }

  private func compactQueue() {
    if queueHead == queue.count {
      queue.removeAll(keepingCapacity: queue.count <= 1024)
      queueHead = 0
    } else if queueHead > 64 && queueHead * 2 > queue.count {
      queue.removeFirst(queueHead)
      queueHead = 0
    }
  }

  /// A waiting attempt was cancelled (its app left, or its exchange timed out).
  func queuedAttemptCancelled(_ transfer: UpstreamTransfer) {
    transfer.queuedIn = nil
    queuedCount -= 1
    reportQueued()
  }

  /// Waiting attempts start while there is room (or an idle connection they may use).
  private func serveQueue() {
    guard !servingQueue else { return }
    servingQueue = true
    defer {
      servingQueue = false
      reportIdle()
      reportQueued()
    }
    let now = clock.seconds()
    while queuedCount > 0 {
      dropCancelledHead()
      guard queueHead < queue.count else { break }
      guard maxConnections == 0 || occupied < maxConnections || !idle.isEmpty else { break }
      guard let next = dequeue() else { break }
      if !place(next, now: now) {
        // Cannot happen (room was checked), but never lose a waiter.
        queue.insert(next, at: queueHead)
        next.queuedIn = self
        queuedCount += 1
        break
      }
    }
  }

  private func scheduleQueueTimer(now: Double) {
    dropCancelledHead()
    guard queueHead < queue.count else { return queueTimer.cancel() }
    let first = queue[queueHead]
    queueTimer.schedule(after: max(0.001, first.started + first.stallTimeout - now))
  }

  /// Waiting attempts whose time (`stallTimeout` since they were made) is up fail with
  /// `queueTimedOut`. The queue is in arrival order, and all of one pool's attempts have the
  /// same timeout in practice; a waiter with a longer one only waits behind the earlier.
  private func expireQueued() {
    let now = clock.seconds()
    var expired: [UpstreamTransfer] = []
    while true {
      dropCancelledHead()
      guard queueHead < queue.count else { break }
      let first = queue[queueHead]
      guard now - first.started >= first.stallTimeout else { break }
      if let transfer = dequeue() { expired.append(transfer) }
    }
    scheduleQueueTimer(now: now)
    reportQueued()
    for transfer in expired { transfer.fail(.queueTimedOut) }
  }

  private func reportQueued() {
    guard let metrics, queuedCount != reportedQueued else { return }
    metrics.upstreamQueued.add(queuedCount - reportedQueued)
    reportedQueued = queuedCount
  }

  /// A new connection for `transfer` whose place is already made.
  private func connectWhenResolved(_ transfer: UpstreamTransfer) {
    if addresses.isEmpty {
      waiting.append((transfer, clock.seconds()))
      if !waitTimer.isPending { waitTimer.schedule(after: connectTimeout) }
    } else {
      connect(transfer)
    }
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
  func attemptEnded() {
    active = max(0, active - 1)
    if queuedCount > 0 { serveQueue() }
  }

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
    if queuedCount > 0 { serveQueue() }
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
    if queuedCount > 0 { serveQueue() }
  }

  /// Takes back a connection whose last response ended cleanly and allows another request.
  /// With attempts waiting, it goes to the first at once (it answered just now, so within any
  /// `reuseWithin`), or is closed to make room if that one needs a new connection.
  func release(_ socket: TLSClientSocket) {
    guard socket.state == .open, socket.pendingOutput == 0 else {
      socket.discard()
      return
    }
    // A response that ended from bytes held during a pause leaves the socket paused: idle, it
    // would not see the upstream close it, and the next request's answer would never be read.
    socket.resumeReading()
    if queuedCount > 0, let next = dequeue() {
      defer { reportQueued() }
      if next.freshConnection {
        socket.discard()
        // The attempt that ends frees its place right after this (`attemptEnded`).
        connectWhenResolved(next)
      } else {
        socket.delegate = nil
        attemptStarted()
        next.run(on: socket, pool: self, reused: true)
      }
      return
    }
    guard idle.count < maxIdle else {
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
    // Closed idle connections made room: waiters go. Cancelled waiters are let go of.
    if queuedCount > 0 {
      serveQueue()
    } else if queueHead < queue.count {
      dropCancelledHead()
    }
    reportIdle()
    reportQueued()
    if let metrics, recentPeak != reportedPeak {
      metrics.upstreamRecentPeak.add(recentPeak - reportedPeak)
      reportedPeak = recentPeak
    }
  }
}

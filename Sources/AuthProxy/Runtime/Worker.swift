import Glibc
import Logging

/// One event-loop thread: its listener, its upstream connection pool, its access-log buffer
/// and its copy of the current token. Nothing here is touched by another thread; the control
/// thread talks to it only through its mailbox.
final class Worker {
  let id: Int
  let loop: EventLoop
  private let config: ServeConfig
  private let pool: UpstreamPool
  private let connections: ClientConnections
  private let forwarder: Forwarder
  private let policy: RequestPolicy
  private let accessLog: AccessLogBuffer
  private let clock: any WallClock
  /// What the data path's timeout decisions read (`MonotonicClock`).
  private let monotonic: any MonotonicClock
  private let logger: Logger
  private let control: MailboxSender<ControlMessage>
  private let metrics: WorkerMetrics
  private(set) var mailbox: MailboxReceiver<WorkerMessage>!

  /// Until the control thread says otherwise (`.starting`), requests wait for a token.
  private var token = ExchangeLifecycle.Token.starting
  /// Requests waiting for a token, oldest first.
  private var waiting: [Exchange] = []
  /// Exchanges under way, by their `ClientRequest`.
  private var inFlight: [ObjectIdentifier: Exchange] = [:]
  private var draining = false
  private var askedForToken = false
  private var exitTimer: Timer?
  private var headTimer: Timer?
  private var requestIDs = FastRandom()
  private var clientVerdict: (address: String, refusal: ProxyError?)?
  /// Who called and what they may call (`--apps-file`, `--allow-route`); replaced by `.apps`.
  private var access: AppAccess
  /// `--max-upstream-concurrency`, `--rate-limit` and per-app limits, over the process's ledger.
  private let admission: Admission<Exchange>
  private let ledger: AdmissionLedger
  /// Shares client connections with the other workers; nil with one worker.
  private let balance: ConnectionBalance?
  /// Global limits are set: every request goes through admission.
  private let globallyLimited: Bool
  private var admissionTimer: Timer?

  init(
    id: Int, config: ServeConfig, listenSocket: Int32, accessLog sink: AccessLogSink, control: MailboxSender<ControlMessage>,
    metrics: WorkerMetrics, trust: TrustStore, clock: any WallClock,
    monotonic: any MonotonicClock = SystemMonotonicClock(), logger: Logger,
    ledger: AdmissionLedger = AdmissionLedger(global: UpstreamLimits()), balance: ConnectionBalance? = nil
  ) throws(EventError) {
    self.balance = balance
    self.ledger = ledger
    admission = Admission(ledger: ledger)
    globallyLimited = !ledger.global.isEmpty
    self.metrics = metrics
    self.id = id
    self.config = config
    self.control = control
    self.clock = clock
    self.monotonic = monotonic
    self.logger = logger
    loop = try EventLoop()
    pool = try UpstreamPool(
      loop: loop, tls: config.tls, host: config.upstream.host, port: config.upstream.port, connectTimeout: config.connectTimeout,
      maxConnections: config.maxUpstreamConnections, metrics: metrics, trust: trust, clock: monotonic)
    connections = try ClientConnections(
      loop: loop, limits: RequestLimits(maxBody: config.maxBody), listenSocket: listenSocket,
      maxConnections: config.maxConnectionsPerWorker, clock: monotonic)
    forwarder = Forwarder(pool: pool, config: config, metrics: metrics, clock: monotonic)
    policy = RequestPolicy(config: config)
    access = config.appAccess
    accessLog = AccessLogBuffer(sink: sink, loop: loop)
    mailbox = try MailboxReceiver(loop: loop) { [unowned self] message in self.received(message) }
    connections.onRequest = { [unowned self] request in self.handle(request) }
    connections.onPause = { [unowned self] pause in self.acceptPaused(pause) }
    if let balance {
      connections.handOff = { [unowned self] fd, peer, unix in
        guard let (_, mailbox) = balance.place(acceptedBy: self.id) else { return false }
        mailbox.send(.adopt(fd: fd, address: peer.address, port: peer.port, unix: unix))
        return true
      }
      connections.onConnectionClosed = { [unowned self] in balance.closed(self.id) }
      balance.register(id, mailbox: mailbox.sender)
    }
    connections.onClientGone = { [unowned self] request in
      if let exchange = self.inFlight[ObjectIdentifier(request)] { self.clientGone(exchange) }
    }
    forwarder.onFinish = { [unowned self] exchange, status, error in self.finished(exchange, status: status, error: error) }
    forwarder.onWorkerAction = { [unowned self] exchange, action in self.perform(exchange, action) }
    forwarder.onThrottled = { [unowned self] seconds in self.upstreamThrottled(seconds) }
    forwarder.onAuthFailure = { [unowned self] exchange, status in
      let whitelist = SecurityMonitor.isIPWhitelistRefusal(status: status, body: exchange.refusalBody)
      self.control.send(
        .security(
          .upstreamAnswer(status: status, path: AccessLogEntry.path(of: exchange.target), ipWhitelist: whitelist, app: exchange.app)))
    }
    connections.onReject = { [unowned self] refusal in
      self.metrics.rejected.add(1)
      // An empty method (the line was not read) counts as "other", as any method not listed does.
      self.metrics.recordRequest(method: refusal.method, status: refusal.error.status)
      self.accessLog.append(
        AccessLogEntry(
          ts: self.clock.now(), requestID: refusal.requestID, client: refusal.client, method: refusal.method,
          path: AccessLogEntry.path(of: refusal.target), status: refusal.error.status, upstreamStatus: nil, durationMs: 0,
          upstreamMs: nil, bytesIn: 0, bytesOut: 0, attempts: 0, reauth: false, error: refusal.error.code))
    }
    // Idle keep-alive connections and stalled replies are closed after --timeout (at least 1 s).
    let idleTimeout = max(1, min(config.timeout.rounded(.up), 3600))
    headTimer = Timer(loop: loop) { [unowned self] in
      self.connections.sweep(headerTimeout: self.config.headerTimeout, bodyTimeout: self.config.timeout, idleTimeout: idleTimeout)
      self.pool.expireIdle()
      self.metrics.clientConnections.store(self.connections.count)
      self.headTimer?.schedule(after: 1)
    }
    headTimer?.schedule(after: 1)
  }

  func run() {
    loop.run()
    accessLog.flush()
  }

  // MARK: connection pressure

  /// When each kind of pause was last said (one diagnostic line a minute per kind).
  private var pauseSaid: [Bool: Double] = [:]
  private var pausesSinceSaid: [Bool: Int] = [:]
  static let pauseReportInterval = 60.0

  private func acceptPaused(_ pause: Acceptor.Pause) {
    let atLimit: Bool
    switch pause {
    case .connectionLimit:
      atLimit = true
      metrics.pausedAtLimit.add(1)
    case .outOfResources:
      atLimit = false
      metrics.pausedOutOfResources.add(1)
    }
    let now = clock.now()
    pausesSinceSaid[atLimit, default: 0] += 1
    if let said = pauseSaid[atLimit], now - said < Worker.pauseReportInterval { return }
    let times = pausesSinceSaid[atLimit] ?? 1
    pauseSaid[atLimit] = now
    pausesSinceSaid[atLimit] = 0
    let again = times > 1 ? " (\(times) times since this was last said)" : ""
    switch pause {
    case .connectionLimit:
      logger.warning(
        "worker \(id): \(connections.count) client connections reached --max-connections (\(config.maxConnections), \(config.maxConnectionsPerWorker) per worker); new clients wait in the kernel's queue until one closes\(again)",
        metadata: ["reason": "max_connections"])
    case .outOfResources(let code, let seconds):
      logger.error(
        "worker \(id): cannot accept connections: \(String(cString: strerror(code))); pausing \(seconds)s (raise the file-descriptor limit, ulimit -n, or lower --max-connections)\(again)",
        metadata: ["reason": "out_of_descriptors"])
    }
  }

  // MARK: requests

  private func handle(_ request: ClientRequest) {
    let now = clock.now()
    let requestID = RequestID.pick(request.header(named: FieldName.requestID), using: &requestIDs)
    let exchange = Exchange(
      request: request, requestID: requestID, client: request.clientAddress, now: now, started: monotonic.seconds(),
      forwarder: forwarder)
    exchange.trace = TraceContext.make(appFields: request.headers, random: &requestIDs)
    inFlight[ObjectIdentifier(request)] = exchange
    metrics.inFlight.add(1)
    if let refusal = checkClient(exchange.client)
      ?? policy.check(method: exchange.method, target: exchange.target, bodyLength: exchange.body.count)
    {
      if refusal.status == 403 && refusal.message.contains("--allow-cidr") {
        logger.warning(
          "refused a client outside --allow-cidr", metadata: ["client": "\(exchange.client)", "request_id": "\(exchange.requestID)"])
      }
      // The log line of an app's refused call still names the app.
      exchange.app = access.table?.identify(proxyAuthorization: appKey(exchange), peerUID: exchange.request.clientUID)?.name
      forwarder.fail(exchange, refusal)
      return
    }
    var appLimits: UpstreamLimits?
    if !access.isInactive {
      switch checkApp(exchange) {
      case .failure(let refusal):
        forwarder.fail(exchange, refusal)
        return
      case .success(let limits):
        appLimits = limits
      }
    }
    // The admission stage: one branch when no limit is set and the upstream asked for no pause.
    if globallyLimited || appLimits != nil || ledger.isPaused {
      admit(exchange, limits: appLimits, now: now)
      return
    }
    dispatch(exchange, now: now)
  }

  /// The app's `Proxy-Authorization` value (its key: never logged).
  private func appKey(_ exchange: Exchange) -> String? { exchange.request.header(named: FieldName.proxyAuthorization) }

  /// Names the app that sent the exchange and checks the route rules: the refusal, or the
  /// app's own upstream limits (nil when it has none).
  private func checkApp(_ exchange: Exchange) -> Result<UpstreamLimits?, ProxyError> {
    let verdict = access.check(
      method: exchange.method, target: exchange.target, proxyAuthorization: appKey(exchange), peerUID: exchange.request.clientUID)
    switch verdict {
    case .allowed(let app):
      exchange.app = app?.name
      return .success(app?.limits)
    case .refused(let error, let app):
      exchange.app = app
      if error.code == "route_denied" {
        metrics.apps.recordRouteDenied(app: app)
        control.send(.security(.routeDenied(app: app, method: exchange.method, path: AccessLogEntry.path(of: exchange.target))))
      }
      return .failure(error)
    }
  }

  // MARK: admission (--max-upstream-concurrency, --rate-limit, per-app limits, upstream pauses)

  /// Sends the exchange on once its app's limits and the global ones have room; else it waits
  /// in its app's queue up to --timeout, then gets 429 with Retry-After.
  func admit(_ exchange: Exchange, limits: UpstreamLimits?, now: Double) {
    let instant = monotonic.seconds()
    switch admission.admit(exchange, app: exchange.app, limits: limits, now: instant) {
    case .admitted:
      exchange.lifecycle.admit()
      dispatch(exchange, now: now)
    case .refused(let retryAfter):
      rateLimited(exchange, retryAfter: retryAfter, why: "too many requests are waiting")
    case .queued:
      metrics.admissionQueued.add(1)
      exchange.lifecycle.queue()
      schedule(exchange, after: config.timeout)
      pumpAdmission()
    }
  }

  private func rateLimited(_ exchange: Exchange, retryAfter: Int, why: String) {
    metrics.rateLimited.add(1)
    let cause =
      ledger.pauseRemaining(now: monotonic.seconds()) != nil
      ? "the API asked to slow down (429 with Retry-After)" : "the upstream limits of this proxy are reached"
    forwarder.fail(exchange, .rateLimited("\(cause); \(why)", retryAfter: retryAfter))
  }

  /// Sends on what now has room; looks again when a token is due, the pause ends, or (with
  /// more than one worker, whose requests free slots this worker does not hear of) in 10 ms.
  private func pumpAdmission() {
    let (ready, wake) = admission.pump(now: monotonic.seconds())
    let now = clock.now()
    for exchange in ready {
      metrics.admissionQueued.add(-1)
      exchange.lifecycle.admit()
      if exchange.isFinished {
        admission.release(exchange)
        continue
      }
      exchange.timer?.cancel()
      dispatch(exchange, now: now)
    }
    guard admission.queued > 0, wake != nil || config.workers > 1 else { return }
    if admissionTimer == nil { admissionTimer = Timer(loop: loop) { [unowned self] in self.pumpAdmission() } }
    admissionTimer?.schedule(after: config.workers > 1 ? min(wake ?? 0.01, 0.01) : wake ?? 0.01)
  }

  /// The upstream answered 429 with Retry-After: no new sends, from any worker, for that long.
  private func upstreamThrottled(_ seconds: Double) {
    let wasPaused = ledger.isPaused
    let applied = ledger.pause(seconds: seconds, now: monotonic.seconds())
    metrics.upstreamPaused.add(1)
    if !wasPaused {
      logger.warning(
        "the API answered 429 with Retry-After \(seconds)s: new upstream requests pause for \(applied)s (at most \(AdmissionLedger.maxPause)s); requests arriving meanwhile wait up to --timeout",
        metadata: ["reason": "upstream_rate_limited"])
    }
  }

  /// The --allow-cidr verdict, kept for the last client address (usually the only one: the app
  /// next to the proxy), so that addresses are not parsed again on every request.
  private func checkClient(_ address: String) -> ProxyError? {
    if let cached = clientVerdict, cached.address == address { return cached.refusal }
    // A Unix-socket peer has no address: the socket file's mode says who may connect.
    let refusal = address.hasPrefix("unix") ? nil : policy.checkClient(address)
    clientVerdict = (address, refusal)
    return refusal
  }

  /// Sends the exchange with the current token, or makes it wait for one.
  private func dispatch(_ exchange: Exchange, now: Double) {
    forwarder.perform(exchange, exchange.lifecycle.offer(token, now: now))
  }

  /// The lifecycle's actions that are the worker's to do; the rest are the forwarder's.
  private func perform(_ exchange: Exchange, _ action: ExchangeLifecycle.Action) {
    switch action {
    case .waitForToken:
      wait(exchange)
    case .replay(let generation):
      metrics.reauths.add(1)
      tokenRejected(exchange, generation: generation)
    case .retry(let delay):
      schedule(exchange, after: delay)
    case .admissionExpired:
      guard admission.remove(exchange, app: exchange.app) else { return }
      metrics.admissionQueued.add(-1)
      let retryAfter = admission.retryAfter(app: exchange.app, now: monotonic.seconds())
      rateLimited(exchange, retryAfter: retryAfter, why: "waited --timeout (\(config.timeout)s)")
    default:
      forwarder.perform(exchange, action)
    }
  }

  /// Runs the exchange's one timer; when it goes off, the lifecycle's phase says what it bounded.
  private func schedule(_ exchange: Exchange, after seconds: Double) {
    if exchange.timer == nil {
      exchange.timer = Timer(loop: loop) { [weak self, weak exchange] in
        guard let self, let exchange else { return }
        self.perform(exchange, exchange.lifecycle.timerFired(token: self.token, now: self.clock.now()))
      }
    }
    exchange.timer?.schedule(after: seconds)
  }

  /// A 401 answered a token: ask for a newer one (the control thread renews it once for all)
  /// and replay when it comes.
  private func tokenRejected(_ exchange: Exchange, generation: UInt64) {
    if case .usable(let snapshot) = token, snapshot.generation > generation, snapshot.isUsable(at: clock.now()) {
      dispatch(exchange, now: clock.now())
      return
    }
    if case .usable(let snapshot) = token, snapshot.generation == generation {
      token = .starting
    }
    control.send(.tokenRejected(generation: generation))
    askedForToken = true
    wait(exchange)
  }

  private func wait(_ exchange: Exchange) {
    waiting.append(exchange)
    // A little past --timeout: a login that fails at its own --timeout deadline then reaches
    // the waiting requests first, with its cause, instead of racing this generic answer.
    schedule(exchange, after: config.timeout + 1)
    if !askedForToken {
      askedForToken = true
      control.send(.tokenNeeded)
    }
  }

  private func clientGone(_ exchange: Exchange) {
    if !exchange.lifecycle.admitted, admission.remove(exchange, app: exchange.app) { metrics.admissionQueued.add(-1) }
    forwarder.clientGone(exchange)
  }

  private func finished(_ exchange: Exchange, status: Int, error: String?) {
    inFlight[ObjectIdentifier(exchange.request)] = nil
    // One that waited for a token and ended otherwise (its timer, its app gone) leaves the line.
    if !waiting.isEmpty { waiting.removeAll { $0 === exchange } }
    metrics.inFlight.add(-1)
    metrics.recordRequest(method: exchange.method, status: status)
    if let app = exchange.app { metrics.apps.recordRequest(app: app, status: status) }
    accessLog.append(exchange.logEntry(status: status, error: error, now: monotonic.seconds()))
    if exchange.lifecycle.admitted {
      admission.release(exchange)
      pumpAdmission()
    }
    if draining && inFlight.isEmpty { control.send(.workerDrained(id)) }
  }

  // MARK: messages from the control thread

  private func received(_ message: WorkerMessage) {
    switch message {
    case .token(let snapshot):
      token = .usable(snapshot)
      askedForToken = false
      let ready = waiting
      waiting.removeAll()
      let now = clock.now()
      for exchange in ready where !exchange.isFinished {
        exchange.timer?.cancel()
        dispatch(exchange, now: now)
      }
    case .tokenUnavailable(let failure):
      token = .unavailable(failure)
      askedForToken = false
      let refused = waiting
      waiting.removeAll()
      for exchange in refused { dispatch(exchange, now: clock.now()) }
    case .drain:
      draining = true
      balance?.withdraw(id)
      connections.stopAccepting()
      if inFlight.isEmpty { control.send(.workerDrained(id)) }
    case .apps(let access):
      self.access = access
    case .adopt(let fd, let address, let port, let unix):
      if !connections.adopt(fd, peer: (address, port), unix: unix) {
        close(fd)
        balance?.closed(id)
      }
    case .exit:
      for exchange in Array(inFlight.values) { forwarder.clientGone(exchange) }
      accessLog.flush()
      // Real time, not `monotonic`: leaving the process must not wait for a test's clock.
      stopWhenFlushed(deadline: monotonicSeconds() + 2)
    }
  }

  /// Leaves the loop once the last replies are written to their sockets (freeing the server
  /// with bytes still queued would cut them), or at the deadline.
  private func stopWhenFlushed(deadline: Double) {
    guard connections.pendingOutput > 0, monotonicSeconds() < deadline else {
      loop.stop()
      return
    }
    if exitTimer == nil { exitTimer = Timer(loop: loop) { [unowned self] in self.stopWhenFlushed(deadline: deadline) } }
    exitTimer?.schedule(after: 0.01)
  }
}

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

  private enum TokenState {
    /// Nothing heard from the control thread yet: requests wait.
    case starting
    case usable(TokenSnapshot)
    case unavailable(TokenFailure)
  }
  private var token = TokenState.starting
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

  init(
    id: Int, config: ServeConfig, listenSocket: Int32, accessLog sink: AccessLogSink, control: MailboxSender<ControlMessage>,
    metrics: WorkerMetrics, trust: TrustStore, clock: any WallClock,
    monotonic: any MonotonicClock = SystemMonotonicClock(), logger: Logger
  ) throws(EventError) {
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
      metrics: metrics, trust: trust, clock: monotonic)
    connections = try ClientConnections(
      loop: loop, limits: RequestLimits(maxBody: config.maxBody), listenSocket: listenSocket,
      maxConnections: config.maxConnectionsPerWorker, clock: monotonic)
    forwarder = Forwarder(pool: pool, config: config, metrics: metrics, clock: monotonic)
    policy = RequestPolicy(config: config)
    accessLog = AccessLogBuffer(sink: sink, loop: loop)
    mailbox = try MailboxReceiver(loop: loop) { [unowned self] message in self.received(message) }
    connections.onRequest = { [unowned self] request in self.handle(request) }
    connections.onPause = { [unowned self] pause in self.acceptPaused(pause) }
    connections.onClientGone = { [unowned self] request in
      if let exchange = self.inFlight[ObjectIdentifier(request)] { self.clientGone(exchange) }
    }
    forwarder.onFinish = { [unowned self] exchange, status, error in self.finished(exchange, status: status, error: error) }
    forwarder.onTokenRejected = { [unowned self] exchange, generation in self.tokenRejected(exchange, generation: generation) }
    forwarder.onRetry = { [unowned self] exchange, delay in self.retry(exchange, after: delay) }
    forwarder.onAuthFailure = { [unowned self] exchange, status in
      let whitelist = SecurityMonitor.isIPWhitelistRefusal(status: status, body: exchange.refusalBody)
      self.control.send(.security(.upstreamAnswer(status: status, path: AccessLogEntry.path(of: exchange.target), ipWhitelist: whitelist)))
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
      request: request, requestID: requestID, client: request.clientAddress, now: now, started: monotonic.seconds())
    inFlight[ObjectIdentifier(request)] = exchange
    metrics.inFlight.add(1)
    if let refusal = checkClient(exchange.client)
      ?? policy.check(method: exchange.method, target: exchange.target, bodyLength: exchange.body.count)
    {
      if refusal.status == 403 && refusal.message.contains("--allow-cidr") {
        logger.warning(
          "refused a client outside --allow-cidr", metadata: ["client": "\(exchange.client)", "request_id": "\(exchange.requestID)"])
      }
      forwarder.fail(exchange, refusal)
      return
    }
    dispatch(exchange, now: now)
  }

  /// The --allow-cidr verdict, kept for the last client address (usually the only one: the app
  /// next to the proxy), so that addresses are not parsed again on every request.
  private func checkClient(_ address: String) -> ProxyError? {
    if let cached = clientVerdict, cached.address == address { return cached.refusal }
    let refusal = policy.checkClient(address)
    clientVerdict = (address, refusal)
    return refusal
  }

  /// Sends the exchange with the current token, or makes it wait for one.
  private func dispatch(_ exchange: Exchange, now: Double) {
    switch token {
    case .usable(let snapshot) where snapshot.isUsable(at: now) && snapshot.generation >= exchange.minimumGeneration:
      forwarder.forward(exchange, token: snapshot)
    case .unavailable(let failure):
      forwarder.fail(exchange, .noToken(failure))
    case .starting, .usable:
      // No token yet, or ours expired: never send an expired one; wait (bounded) for the next.
      wait(exchange)
    }
  }

  /// A 401 answered a token: ask for a newer one (the control thread renews it once for all)
  /// and replay when it comes.
  private func tokenRejected(_ exchange: Exchange, generation: UInt64) {
    if case .usable(let snapshot) = token, snapshot.generation > generation, snapshot.isUsable(at: clock.now()) {
      forwarder.forward(exchange, token: snapshot)
      return
    }
    if case .usable(let snapshot) = token, snapshot.generation == generation {
      token = .starting
    }
    control.send(.tokenRejected(generation: generation))
    askedForToken = true
    wait(exchange)
  }

  /// Another attempt after `delay`, with the token current then.
  private func retry(_ exchange: Exchange, after delay: Double) {
    exchange.timer = Timer(loop: loop) { [weak self, weak exchange] in
      guard let self, let exchange, !exchange.finished else { return }
      self.dispatch(exchange, now: self.clock.now())
    }
    exchange.timer?.schedule(after: delay)
  }

  private func wait(_ exchange: Exchange) {
    waiting.append(exchange)
    exchange.timer = Timer(loop: loop) { [weak self, weak exchange] in
      guard let self, let exchange else { return }
      self.waiting.removeAll { $0 === exchange }
      self.forwarder.fail(exchange, .noToken("none could be had within --timeout (\(self.config.timeout)s)"))
    }
    // A little past --timeout: a login that fails at its own --timeout deadline then reaches
    // the waiting requests first, with its cause, instead of racing this generic answer.
    exchange.timer?.schedule(after: config.timeout + 1)
    if !askedForToken {
      askedForToken = true
      control.send(.tokenNeeded)
    }
  }

  private func clientGone(_ exchange: Exchange) {
    waiting.removeAll { $0 === exchange }
    forwarder.clientGone(exchange)
  }

  private func finished(_ exchange: Exchange, status: Int, error: String?) {
    inFlight[ObjectIdentifier(exchange.request)] = nil
    metrics.inFlight.add(-1)
    metrics.recordRequest(method: exchange.method, status: status)
    accessLog.append(exchange.logEntry(status: status, error: error, now: monotonic.seconds()))
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
      for exchange in ready where !exchange.finished {
        exchange.timer?.cancel()
        if snapshot.isUsable(at: now) && snapshot.generation >= exchange.minimumGeneration {
          forwarder.forward(exchange, token: snapshot)
        } else {
          wait(exchange)
        }
      }
    case .tokenUnavailable(let failure):
      token = .unavailable(failure)
      askedForToken = false
      let refused = waiting
      waiting.removeAll()
      for exchange in refused { forwarder.fail(exchange, .noToken(failure)) }
    case .drain:
      draining = true
      connections.stopAccepting()
      if inFlight.isEmpty { control.send(.workerDrained(id)) }
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

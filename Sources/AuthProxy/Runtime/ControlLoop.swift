import Glibc
import Logging

/// The control thread: token work (login, refresh, backoff), the admin listener, signals and
/// shutdown. It decides through `TokenStateMachine` and tells the workers through their mailboxes.
final class ControlLoop {
  let loop: EventLoop
  private(set) var mailbox: MailboxReceiver<ControlMessage>!
  private let config: ServeConfig
  private var rotator: CredentialRotator!
  private let clock: any WallClock
  private let logger: Logger
  private let multi: CurlMulti
  private let tokens: TokenClient
  private var store: TokenStore!
  private let workerMetrics: [WorkerMetrics]
  private var loader: CredentialLoader!
  private var monitor: SecurityMonitor
  private var sinks: AlertSinks?
  private let metrics = ControlMetrics()
  private var machine: TokenStateMachine
  private var workers: [MailboxSender<WorkerMessage>] = []
  private var admin: AdminServer?
  private var signals: SignalWatcher?
  private var refreshTimer: Timer!
  private var retryTimer: Timer!
  private var drainTimer: Timer?
  private var drained: Set<Int> = []
  private var shuttingDown = false
  /// `.workersStarted` arrived: `workers` is every worker there will be.
  private var workersKnown = false
  private var ageTimer: Timer?
  private var trimTimer: Timer?
  private var quietTrim = QuietTrim()
  private let accessLog: AccessLogSink
  /// A credential load runs on a thread of its own; one at a time, and a request that comes
  /// meanwhile (SIGHUP during a poll) runs after it.
  private var loadInFlight = false
  private var loadAgain: String?
  /// `--apps-file`, watched and read again on SIGHUP.
  private var apps: AppsReloader?
  /// The workers' shared admission counters: a reload forgets the apps no longer named.
  private let ledger: AdmissionLedger?

  init(
    config: ServeConfig, credentials: Credentials, loader: CredentialLoader, adminSocket: Int32, accessLog: AccessLogSink,
    workerMetrics: [WorkerMetrics], trust: TrustStore,
    clock: any WallClock, logger: Logger, watchSignals: Bool, ledger: AdmissionLedger? = nil
  ) throws(EventError) {
    self.ledger = ledger
    self.workerMetrics = workerMetrics
    self.accessLog = accessLog
    self.config = config
    self.clock = clock
    self.logger = logger
    loop = try EventLoop()
    multi = try CurlMulti(loop: loop)
    tokens = TokenClient(multi: multi, config: config, trust: trust, clock: clock, logger: logger)
    machine = TokenStateMachine(refreshBefore: config.refreshBefore)
    monitor = config.alerts.makeMonitor()
    rotator = CredentialRotator(loop: loop, current: credentials, loader: loader, tokens: tokens, logger: logger)
    rotator.onRotated = { [unowned self] pair in
      self.metrics.rotations["success", default: 0] += 1
      self.store.save(pair)
      self.apply(.rotated(pair))
    }
    switch config.tokenStore {
    case .memory:
      store = MemoryTokenStore(client: tokens) { [unowned self] in self.rotator.current }
    case .redis(let target):
      let redis = try RedisClient(loop: loop, target: target, logger: logger)
      let metrics = self.metrics
      redis.onFailure = { reason in metrics.tokenStoreFailures[reason, default: 0] += 1 }
      redis.onStateChange = { up in metrics.tokenStoreUp = up }
      metrics.tokenStoreUp = false
      store = RedisTokenStore(
        loop: loop, redis: redis, client: tokens, credentials: { [unowned self] in self.rotator.current },
        key: config.encryptionKey!, keyName: RedisTokenStore.keyName(upstream: config.upstream, username: credentials.username),
        clock: clock, logger: logger)
    }
    // A pair another replica obtained: adopted like a rotation, without an API call.
    store.onAdopt = { [unowned self] pair in
      self.logger.info("adopted the token pair another replica stored")
      self.apply(.rotated(pair))
    }
    rotator.oldPairProvider = { [unowned self] in self.machine.pair }
    rotator.requestLoad = { [unowned self] reason in self.loadCredentials(reason: reason) }
    rotator.onSourceFailure = { [unowned self] in self.metrics.sourceFailures += 1 }
    rotator.onLogout = { [unowned self] success in self.metrics.logouts[success ? "success" : "failure", default: 0] += 1 }
    rotator.onFailure = { [unowned self] why in
      self.metrics.rotations["failure", default: 0] += 1
      self.observe(.rotationFailed(reason: why))
    }
    sinks = try AlertSinks(
      webhook: config.alerts.webhook, command: config.alerts.command, loop: loop, multi: multi, logger: logger,
      onFailure: { [unowned self] failure in self.metrics.sinkFailures[failure.sink.rawValue, default: 0] += 1 })
    self.loader = loader
    ageTimer = Timer(loop: loop) { [unowned self] in
      self.warnIfCredentialsAreOld()
      self.ageTimer?.schedule(after: 86400)
    }
    ageTimer?.schedule(after: 0)
    trimTimer = Timer(loop: loop) { [unowned self] in
      let activity = self.workerMetrics.reduce(0) { $0 + $1.answered }
      let inFlight = self.workerMetrics.reduce(0) { $0 + $1.inFlight.current }
      let held = self.workerMetrics.reduce(0) { $0 + $1.upstreamIdle.current + $1.clientConnections.current }
      if self.quietTrim.due(activity: activity, inFlight: inFlight, held: held) { QuietTrim.releaseFreeMemory() }
      self.trimTimer?.schedule(after: QuietTrim.tick)
    }
    trimTimer?.schedule(after: QuietTrim.tick)
    mailbox = try MailboxReceiver(loop: loop) { [unowned self] message in self.received(message) }
    apps = makeAppsReloader()
    refreshTimer = Timer(loop: loop) { [unowned self] in self.apply(.refreshDue) }
    retryTimer = Timer(loop: loop) { [unowned self] in self.apply(.retryDue) }
    admin = try AdminServer(
      loop: loop, socket: adminSocket, readiness: { [unowned self] in self.readiness() },
      metrics: { [unowned self] in self.renderMetrics() })
    if watchSignals {
      signals = try SignalWatcher(loop: loop, signals: [SIGTERM, SIGINT, SIGHUP, SIGUSR1]) { [unowned self] signal in
        if signal == SIGUSR1 {
          self.logger.info("SIGUSR1: reopening the access log")
          accessLog.reopen()
          return
        }
        if signal == SIGHUP {
          self.apps?.load(reason: "SIGHUP")
          self.loadCredentials(reason: "SIGHUP")
          return
        }
        self.logger.info("received signal \(signal == SIGTERM ? "SIGTERM" : "SIGINT"); draining")
        self.beginShutdown()
      }
    }
  }

  func run() { loop.run() }

  /// Counts a security event; an alert that comes of it goes to the log and the sinks.
  private func observe(_ event: SecurityEvent) {
    guard let alert = monitor.record(event, now: clock.now()) else { return }
    metrics.alerts[alert.rule.rawValue, default: 0] += 1
    sinks?.deliver(alert)
  }

  /// Loads the credentials on a thread of its own (a Vault source blocks for seconds) and
  /// hands the result back through the mailbox.
  private func loadCredentials(reason: String) {
    guard !loadInFlight else {
      // A poll during a load adds nothing; anything else (SIGHUP) is served after it.
      if reason != CredentialRotator.pollReason { loadAgain = reason }
      return
    }
    loadInFlight = true
    let loader = self.loader!
    let mailbox = self.mailbox.sender
    let thread = LoopThread(name: "ap-cred-load") {
      let result: Result<Credentials, CredentialError>
      do throws(CredentialError) {
        result = .success(try loader.load())
      } catch {
        result = .failure(error)
      }
      mailbox.send(.credentialsLoaded(result, reason: reason))
    }
    thread.detach()
  }

  /// The watcher of `--apps-file`: reads run on a thread of their own and come back through
  /// the mailbox; a new table goes to every worker.
  private func makeAppsReloader() -> AppsReloader? {
    guard let path = config.appsFile else { return nil }
    let reloader = AppsReloader(loop: loop, path: path, table: config.apps, logger: logger)
    let mailbox = self.mailbox.sender
    reloader.startLoad = { reason in
      let thread = LoopThread(name: "ap-apps-load") { mailbox.send(.appsLoaded(AppTable.load(path: path), reason: reason)) }
      thread.detach()
    }
    reloader.onChange = { [unowned self] table in
      self.ledger?.keepApps(Set(table.apps.map(\.name)))
      for worker in self.workers { worker.send(.apps(AppAccess(table: table, global: self.config.allowRoutes))) }
    }
    return reloader
  }

  private func renderMetrics() -> String {
    let now = clock.now()
    return MetricsExposition.render(
      workers: workerMetrics, control: metrics, tokenExpiresIn: machine.pair.map { max(0, $0.accessExpiresAt - now) },
      credentialAge: credentialAge, ready: machine.hasUsableToken(at: now), accessLog: accessLog.stats)
  }

  private func readiness() -> (ready: Bool, reason: String) {
    // From SIGTERM on, load balancers should stop sending: not ready, whatever the token.
    if shuttingDown { return (false, "draining") }
    let store = self.store.problem.map { "; " + $0 } ?? ""
    if machine.hasUsableToken(at: clock.now()) { return (true, "a valid token is held" + store) }
    // A credential source that cannot be read matters only while no token is held.
    let source = rotator.sourceProblem.map { "; the credential source cannot be read: \($0)" } ?? ""
    if let failure = machine.lastFailure { return (false, failure.description + store + source) }
    return (false, "no token yet: logging in" + store + source)
  }

  private func received(_ message: ControlMessage) {
    switch message {
    case .workersStarted(let senders):
      workers = senders
      workersKnown = true
      // A table read again before the workers were known.
      if let table = apps?.table, table != config.apps {
        for worker in workers { worker.send(.apps(AppAccess(table: table, global: config.allowRoutes))) }
      }
      // A SIGTERM that came first: drain the workers now that they can be told.
      if shuttingDown {
        drainWorkers()
        return
      }
      // Log in at start-up, before the first request asks.
      apply(.tokenNeeded)
    case .tokenNeeded:
      apply(.tokenNeeded)
    case .tokenRejected(let generation):
      logger.warning("the API refused a token it should have accepted (revoked?); renewing it", metadata: ["generation": "\(generation)"])
      apply(.tokenRejected(generation: generation))
    case .workerDrained(let id):
      drained.insert(id)
      if shuttingDown && drained.count == workers.count { exit() }
    case .shutdown:
      beginShutdown()
    case .reloadCredentials:
      loadCredentials(reason: "reload requested")
    case .security(let event):
      observe(event)
    case .reloadApps(let reason):
      apps?.load(reason: reason)
    case .appsLoaded(let result, let reason):
      apps?.loaded(result, reason: reason)
    case .credentialsLoaded(let result, let reason):
      loadInFlight = false
      rotator.rotate(with: result, reason: reason)
      if let again = loadAgain {
        loadAgain = nil
        loadCredentials(reason: again)
      }
    }
  }

  private func apply(_ event: TokenStateMachine.Event) {
    let jitter = Double.random(in: 0..<1)
    for action in machine.handle(event, now: clock.now(), jitter: jitter) { perform(action) }
  }

  /// The trace-id of the login or refresh just made, for its log line.
  private var authTrace: Logger.Metadata { tokens.lastTraceID.map { ["trace_id": "\($0)"] } ?? [:] }

  private func perform(_ action: TokenStateMachine.Action) {
    switch action {
    case .login:
      logger.info("logging in to the API", metadata: ["user": "\(rotator.current.username)"])
      store.obtain(.login, have: machine.pair) { [weak self] result, adopted in
        guard let self else { return }
        if adopted {
          self.logger.info("adopted the token pair another replica stored (no login needed)")
          self.apply(.loginFinished(result))
          return
        }
        self.metrics.logins[result.isSuccess ? "success" : "failure", default: 0] += 1
        switch result {
        case .success: self.logger.info("login succeeded", metadata: self.authTrace)
        case .failure(let failure):
          self.logger.error(
            "login failed: \(failure.description)", metadata: self.authTrace.merging(["reason": "\(failure.code)"]) { $1 })
          self.observe(.loginFailed(reason: failure.description))
        }
        self.apply(.loginFinished(result))
      }
    case .refresh(let refreshToken):
      store.obtain(.refresh(refreshToken), have: machine.pair) { [weak self] result, adopted in
        guard let self else { return }
        if adopted {
          self.logger.info("adopted the token pair another replica refreshed")
          self.apply(.refreshFinished(result))
          return
        }
        self.metrics.refreshes[result.isSuccess ? "success" : "failure", default: 0] += 1
        switch result {
        case .success: self.logger.info("token refreshed", metadata: self.authTrace)
        case .failure(let failure):
          self.logger.warning(
            "refresh failed, logging in again: \(failure.description)",
            metadata: self.authTrace.merging(["reason": "\(failure.code)"]) { $1 })
          self.observe(.refreshFailed(reason: failure.description))
        }
        self.apply(.refreshFinished(result))
      }
    case .publish(let snapshot):
      for worker in workers { worker.send(.token(snapshot)) }
    case .publishUnavailable(let failure):
      for worker in workers { worker.send(.tokenUnavailable(failure)) }
    case .scheduleRefresh(let at):
      refreshTimer.schedule(after: at - clock.now())
    case .scheduleRetry(let after):
      logger.info("next login attempt in \((after * 10).rounded() / 10)s")
      retryTimer.schedule(after: after)
    }
  }

  /// SPEC §3: a credential older than 90 days is warned about at start-up and daily.
  static let maximumCredentialAge = 90.0 * 86400

  /// Seconds since the credentials were last rotated, if the source tells.
  var credentialAge: Double? { rotator.current.rotatedAt.map { clock.now() - $0 } }

  private func warnIfCredentialsAreOld() {
    guard let age = credentialAge, age > ControlLoop.maximumCredentialAge else { return }
    logger.warning(
      "the API credentials are \(Int(age / 86400)) days old (over 90): rotate them (stage, check-credentials, swap, verify)",
      metadata: ["rule": "credential_age", "age_days": "\(Int(age / 86400))"])
  }

  // MARK: shutdown

  /// SIGTERM: the workers stop accepting and finish what is in flight. The admin listener
  /// stays up until the process exits, so that probes and scrapes see "draining" instead of
  /// a refused connection.
  private func beginShutdown() {
    guard !shuttingDown else { return }
    shuttingDown = true
    admin?.draining = true
    refreshTimer.cancel()
    retryTimer.cancel()
    // Before the workers are known (a SIGTERM during start-up), `.workersStarted` drains them.
    if workersKnown { drainWorkers() }
  }

  private func drainWorkers() {
    for worker in workers { worker.send(.drain) }
    drainTimer = Timer(loop: loop) { [unowned self] in
      self.logger.warning("drain timeout reached; closing the remaining requests")
      self.exit()
    }
    drainTimer?.schedule(after: config.drainTimeout)
    if workers.isEmpty { exit() }
  }

  private func exit() {
    drainTimer?.cancel()
    for worker in workers { worker.send(.exit) }
    store.close()
    // Off by default: a logout revokes every token of the client, those of other replicas too.
    if config.logoutOnExit && store.isShared {
      logger.warning(
        "--logout-on-exit skipped: the token store is shared and other replicas use this token (use check-credentials --logout to revoke deliberately)"
      )
    }
    guard config.logoutOnExit, !store.isShared, let pair = machine.pair else {
      loop.stop()
      return
    }
    logger.info("--logout-on-exit: logging the client's tokens out")
    tokens.logout(pair.accessToken) { [weak self] outcome in
      self?.metrics.logouts[outcome.isSuccess ? "success" : "failure", default: 0] += 1
      if case .failure(let failure) = outcome { self?.logger.warning("logout failed: \(failure.description)") }
      self?.loop.stop()
    }
  }
}

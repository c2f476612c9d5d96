/// Last step of the chain: sends an exchange upstream on the worker's `UpstreamPool` and streams
/// the answer back, with backpressure from the app's socket.
final class Forwarder {
  private let pool: UpstreamPool
  private let config: ServeConfig
  private let rewrite: HeaderRewrite
  /// The upstream's `Host`, worked out once (not per request).
  private let upstreamAuthority: String
  /// Above this many bytes queued to a client, stop reading the upstream...
  static let highWatermark = 256 * 1024
  /// ...and read it again once the queue is down to this many (not at empty: the socket still
  /// has these to send while the upstream's next bytes are read and decrypted).
  static let lowWatermark = highWatermark / 2

  /// Called once per exchange when its answer is complete (or abandoned).
  var onFinish: ((Exchange, Int, String?) -> Void)?
  /// The lifecycle's actions that are the worker's to do: wait for a token, replay with a newer
  /// one, retry later, leave the admission queue.
  var onWorkerAction: ((Exchange, ExchangeLifecycle.Action) -> Void)?
  /// Called for every upstream 401 and 403, for the security monitor.
  var onAuthFailure: ((Exchange, Int) -> Void)?
  /// Called when the upstream answered 429 with a Retry-After, with its seconds: new sends pause.
  var onThrottled: ((Double) -> Void)?

  private let budget = RetryBudget()
  private let policy: ExchangeLifecycle.Policy

  private let metrics: WorkerMetrics
  /// What the retry budget and the attempts' durations read.
  private let clock: any MonotonicClock

  init(pool: UpstreamPool, config: ServeConfig, metrics: WorkerMetrics, clock: any MonotonicClock = SystemMonotonicClock()) {
    self.pool = pool
    self.clock = clock
    self.config = config
    self.metrics = metrics
    rewrite = HeaderRewrite(userAgent: config.userAgent)
    upstreamAuthority = config.upstream.authority
    policy = ExchangeLifecycle.Policy(
      retries: config.retries, retryDelay: config.retryDelay, timeout: config.timeout, reuseWindow: config.reuseWindow)
  }

  /// Switches, not sets: these run for every request, and hashing a method costs more.
  static func isIdempotent(_ method: String) -> Bool {
    switch method {
    case "GET", "HEAD", "OPTIONS", "PUT", "DELETE": true
    default: false
    }
  }

  /// A new exchange's lifecycle under this run's retry policy. May it be sent twice (SPEC §4)?
  /// Only for idempotent methods, or requests the app marked with an Idempotency-Key.
  func lifecycle(method: String, headers: HTTPFields) -> ExchangeLifecycle {
    let idempotent = Forwarder.isIdempotent(method)
    let retrySafe =
      idempotent
      || headers.indices.contains {
        headers.name(at: $0, is: FieldName.idempotencyKey) && !headers.value(at: $0).isEmpty
      }
    return ExchangeLifecycle(policy: policy, idempotent: idempotent, retrySafe: retrySafe)
  }

  /// A `Retry-After` in seconds (seconds or an HTTP date), if the answer has one.
  private static func retryAfter(_ headers: HTTPFields) -> Double? {
    guard let value = headers.value(named: FieldName.retryAfter)?[...].trimmingSpaces() else { return nil }
    return RetryAfter.seconds(value, now: SystemClock().now())
  }

  /// Does what the exchange's lifecycle decided; hands the worker's part to the worker.
  func perform(_ exchange: Exchange, _ action: ExchangeLifecycle.Action) {
    switch action {
    case .none, .streamHead, .dropAnswer:
      // The head's two actions are done where the head is (`attemptHead`).
      return
    case .send(let token, let freshConnection):
      send(exchange, token: token, freshConnection: freshConnection)
    case .waitForToken, .replay, .retry, .admissionExpired:
      onWorkerAction?(exchange, action)
    case .complete(let status):
      exchange.request.endStream()
      finish(exchange, status: status, error: nil)
    case .fail(let error):
      respond(exchange, error)
    case .failAfterUnsafeReuse:
      metrics.unsafeReuseFailures.add(1)
      respond(exchange, .upstream(.brokenAfterSend))
    case .retractStream(let error):
      let retracted = exchange.request.retractStream()
      if retracted { exchange.bytesOut = 0 }
      perform(exchange, exchange.lifecycle.streamRetracted(retracted, error: error))
    case .cut(let status, let code):
      // Logged first: cutting the connection runs its close callback at once.
      let request = exchange.request
      finish(exchange, status: status, error: code)
      request.abort()
    case .resume:
      exchange.transfer?.resume()
    case .abandon(let status):
      if let transfer = exchange.transfer {
        transfer.cancel()
        exchange.transfer = nil
      }
      exchange.request.abort()
      finish(exchange, status: status, error: "client_closed")
    }
  }

  /// Answers with a proxy-made JSON error, unless the exchange already ended.
  func fail(_ exchange: Exchange, _ error: ProxyError) {
    perform(exchange, exchange.lifecycle.refuse(error))
  }

  /// The app went away: stop the upstream work and free the request.
  func clientGone(_ exchange: Exchange) {
    perform(exchange, exchange.lifecycle.clientGone())
  }

  private func send(_ exchange: Exchange, token: TokenSnapshot, freshConnection: Bool) {
    let now = clock.seconds()
    if exchange.lifecycle.attempts == 1 { budget.recordRequest(now: now) } else { metrics.retries.add(1) }
    let transfer = UpstreamTransfer(
      head: rewrite.upstreamHead(
        method: exchange.method, target: config.upstream.basePath + exchange.target, host: upstreamAuthority,
        appFields: exchange.appHeaders, authorization: token.authorization, requestID: exchange.requestID,
        bodyLength: exchange.body.count, trace: exchange.trace),
      body: exchange.body, isHEAD: exchange.method == "HEAD", freshConnection: freshConnection, stallTimeout: config.timeout,
      clock: clock, now: now)
    // A request that must never be sent twice goes only on a connection that answered within
    // `--reuse-window`: one idle for longer may be closed by the upstream just as we send on it.
    if !exchange.lifecycle.retrySafe { transfer.reuseWithin = config.reuseWindow }
    exchange.transfer = transfer
    exchange.attemptStarted = now
    // The exchange hears the attempt (no closures per request) and hands it back here.
    transfer.delegate = exchange
    pool.start(transfer)
  }

  /// The attempt's answer has a head: pass it on, or drop it for a replay or a retry.
  fileprivate func attemptHead(_ exchange: Exchange, _ transfer: UpstreamTransfer, status: Int, headers: HTTPFields, contentLength: Int?) {
    // Retry-After is read once: a 429's pauses new sends, and any bounds this request's retry.
    let retryAfter = Forwarder.retryAfter(headers)
    if status == 429, let retryAfter, let onThrottled { onThrottled(retryAfter) }
    switch exchange.lifecycle.head(status: status, retryAfter: retryAfter, budget: budget, now: clock.seconds()) {
    case .streamHead:
      let named = rewrite.connectionNamed(headers)
      exchange.request.startStream(
        status: status, fields: headers, contentLength: contentLength,
        keep: { rewrite.keepsResponseField(headers, at: $0, connectionNamed: named) },
        adding: ("X-Request-ID", exchange.requestID))
    case .dropAnswer:
      transfer.discardsBody = true
    case let action:
      perform(exchange, action)
    }
  }

  /// Body bytes of the answer: on to the app; false pauses the upstream until its socket drains.
  fileprivate func attemptData(_ exchange: Exchange, _ bytes: UnsafeRawBufferPointer) -> Bool {
    exchange.bytesOut += bytes.count
    if exchange.lifecycle.upstreamStatus == 403 && exchange.refusalBody.count < 2048 {
      exchange.refusalBody.append(contentsOf: bytes.prefix(2048 - exchange.refusalBody.count))
    }
    // The connection tells the exchange when the output drained, if it could not be written
    // at once; it lets go of the exchange when the reply ends or the connection closes.
    exchange.request.send(bytes, drainObserver: exchange)
    // Past the watermark, stop reading the upstream until the app's socket drains.
    if exchange.request.pendingOutput > Forwarder.highWatermark {
      exchange.lifecycle.backlogged()
      return false
    }
    return true
  }

  fileprivate func attemptCompleted(_ exchange: Exchange, _ result: UpstreamResult) {
    guard let attempt = exchange.lifecycle.attempt else { return }
    exchange.transfer = nil
    let now = clock.seconds()
    let seconds = now - exchange.attemptStarted
    exchange.upstreamMs = seconds * 1000
    metrics.recordUpstream(seconds: seconds, status: attempt.status)
    if let status = attempt.status, status == 401 || status == 403 { onAuthFailure?(exchange, status) }
    perform(
      exchange,
      exchange.lifecycle.ended(error: result.error, reusedConnection: result.reusedConnection, budget: budget, now: now))
  }

  private func respond(_ exchange: Exchange, _ error: ProxyError) {
    let body = error.body(requestID: exchange.requestID)
    // A reply to HEAD carries no body (ServerRequest.respond leaves it out).
    exchange.bytesOut = exchange.method == "HEAD" ? 0 : body.count
    exchange.request.respond(status: error.status, headers: error.headers(requestID: exchange.requestID), body: body)
    finish(exchange, status: error.status, error: error.code)
  }

  /// Once per exchange: its lifecycle reached `finished` just before.
  private func finish(_ exchange: Exchange, status: Int, error: String?) {
    exchange.timer?.cancel()
    exchange.timer = nil
    onFinish?(exchange, status, error)
  }
}

/// The exchange is its attempt's delegate and its connection's drain observer: objects it
/// already is, so a request allocates no callbacks for them.
extension Exchange: UpstreamTransferDelegate, OutputDrainObserver {
  func transferHead(_ transfer: UpstreamTransfer, status: Int, headers: HTTPFields, contentLength: Int?) {
    forwarder.attemptHead(self, transfer, status: status, headers: headers, contentLength: contentLength)
  }

  func transferData(_ transfer: UpstreamTransfer, _ bytes: UnsafeRawBufferPointer) -> Bool {
    forwarder.attemptData(self, bytes)
  }

  func transferCompleted(_ transfer: UpstreamTransfer, _ result: UpstreamResult) {
    forwarder.attemptCompleted(self, result)
  }

  func outputDrained() {
    forwarder.perform(self, lifecycle.drained())
  }
}

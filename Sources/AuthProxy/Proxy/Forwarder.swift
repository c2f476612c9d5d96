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
  /// Called when the upstream answered 401 to the token of this generation and the request
  /// may be replayed once with a newer one.
  var onTokenRejected: ((Exchange, UInt64) -> Void)?
  /// Called for every upstream 401 and 403, for the security monitor.
  var onAuthFailure: ((Exchange, Int) -> Void)?
  /// Called when an attempt failed in a way worth another one, after `delay` seconds (with
  /// whatever token is current then).
  var onRetry: ((Exchange, Double) -> Void)?
  /// Called when the upstream answered 429 with a Retry-After, with its seconds: new sends pause.
  var onThrottled: ((Double) -> Void)?

  private let budget = RetryBudget()

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
  }

  /// Switches, not sets: these run for every request, and hashing a method costs more.
  private static func isIdempotent(_ method: String) -> Bool {
    switch method {
    case "GET", "HEAD", "OPTIONS", "PUT", "DELETE": true
    default: false
    }
  }
  private static func isRetryable(status: Int) -> Bool { status == 429 || (502...504).contains(status) }

  /// SPEC §4: only idempotent methods, or requests the app marked with an Idempotency-Key.
  static func isRetrySafe(_ exchange: Exchange) -> Bool {
    isIdempotent(exchange.method)
      || exchange.appHeaders.indices.contains {
        exchange.appHeaders.name(at: $0, is: FieldName.idempotencyKey) && !exchange.appHeaders.value(at: $0).isEmpty
      }
  }

  /// May this exchange have one more attempt now?
  private func mayRetry(_ exchange: Exchange) -> Bool {
    exchange.attempts <= config.retries && Forwarder.isRetrySafe(exchange) && onRetry != nil
      && budget.allowRetry(now: clock.seconds())
  }

  /// The wait before the next attempt: --retry-delay, or longer when a `Retry-After` (seconds
  /// or an HTTP date) asks for it; nil when it asks for more than --timeout (no retry then).
  private func retryDelay(_ headers: HTTPFields) -> Double? {
    guard let value = headers.value(named: FieldName.retryAfter)?[...].trimmingSpaces(),
      let seconds = RetryAfter.seconds(value, now: SystemClock().now())
    else {
      return config.retryDelay
    }
    return seconds <= config.timeout ? max(seconds, config.retryDelay) : nil
  }

  func forward(_ exchange: Exchange, token: TokenSnapshot, freshConnection: Bool = false) {
    let now = clock.seconds()
    if exchange.attempts == 0 { budget.recordRequest(now: now) }
    exchange.attempts += 1
    if exchange.attempts > 1 { metrics.retries.add(1) }
    // A request that must never be sent twice goes on a connection that answered moments ago
    // (`--reuse-window`), else a new one: a connection idle for longer may be closed by the
    // upstream just as we send on it, and such a request cannot be sent again.
    let retrySafe = Forwarder.isRetrySafe(exchange)
    let freshConnection = freshConnection || (!retrySafe && config.reuseWindow <= 0)
    let transfer = UpstreamTransfer(
      head: rewrite.upstreamHead(
        method: exchange.method, target: config.upstream.basePath + exchange.target, host: upstreamAuthority,
        appFields: exchange.appHeaders, authorization: token.authorization, requestID: exchange.requestID,
        bodyLength: exchange.body.count, trace: exchange.trace),
      body: exchange.body, isHEAD: exchange.method == "HEAD", freshConnection: freshConnection, stallTimeout: config.timeout,
      clock: clock, now: now)
    if !retrySafe { transfer.reuseWithin = config.reuseWindow }
    exchange.transfer = transfer
    exchange.attempt = Exchange.Attempt(
      forwarder: self, token: token, started: now, status: nil, freshConnection: freshConnection)
    // The exchange hears the attempt (no closures per request) and hands it back here.
    transfer.delegate = exchange
    pool.start(transfer)
  }

  /// The attempt's answer has a head: pass it on, or drop it for a replay or a retry.
  fileprivate func attemptHead(_ exchange: Exchange, _ transfer: UpstreamTransfer, status: Int, headers: HTTPFields, contentLength: Int?) {
    exchange.timer?.cancel()
    exchange.upstreamStatus = status
    exchange.attempt?.status = status
    if status == 401 && !exchange.reauth && onTokenRejected != nil {
      // The API refused the request before acting on it: drop this answer, replay once.
      exchange.awaitingReauth = true
      transfer.discardsBody = true
      return
    }
    if status == 429, let onThrottled, let value = headers.value(named: FieldName.retryAfter)?[...].trimmingSpaces(),
      let seconds = RetryAfter.seconds(value, now: SystemClock().now())
    {
      onThrottled(seconds)
    }
    if Forwarder.isRetryable(status: status), let delay = retryDelay(headers), mayRetry(exchange) {
      exchange.retryAfter = delay
      transfer.discardsBody = true
      return
    }
    exchange.headSent = true
    let named = rewrite.connectionNamed(headers)
    exchange.request.startStream(
      status: status, fields: headers, contentLength: contentLength,
      keep: { rewrite.keepsResponseField(headers, at: $0, connectionNamed: named) },
      adding: ("X-Request-ID", exchange.requestID))
  }

  /// Body bytes of the answer: on to the app; false pauses the upstream until its socket drains.
  fileprivate func attemptData(_ exchange: Exchange, _ bytes: UnsafeRawBufferPointer) -> Bool {
    exchange.bytesOut += bytes.count
    if exchange.upstreamStatus == 403 && exchange.refusalBody.count < 2048 {
      exchange.refusalBody.append(contentsOf: bytes.prefix(2048 - exchange.refusalBody.count))
    }
    // The connection tells the exchange when the output drained, if it could not be written
    // at once; it lets go of the exchange when the reply ends or the connection closes.
    exchange.request.send(bytes, drainObserver: exchange)
    // Past the watermark, stop reading the upstream until the app's socket drains.
    if exchange.request.pendingOutput > Forwarder.highWatermark {
      exchange.paused = true
      return false
    }
    return true
  }

  fileprivate func attemptCompleted(_ exchange: Exchange, _ result: UpstreamResult) {
    guard let attempt = exchange.attempt else { return }
    exchange.attempt = nil
    exchange.timer?.cancel()
    exchange.transfer = nil
    let seconds = clock.seconds() - attempt.started
    exchange.upstreamMs = seconds * 1000
    metrics.recordUpstream(seconds: seconds, status: attempt.status)
    if let status = attempt.status, status == 401 || status == 403 { onAuthFailure?(exchange, status) }
    if exchange.awaitingReauth {
      metrics.reauths.add(1)
      exchange.awaitingReauth = false
      exchange.reauth = true
      exchange.minimumGeneration = attempt.token.generation + 1
      onTokenRejected?(exchange, attempt.token.generation)
    } else if let delay = exchange.retryAfter {
      exchange.retryAfter = nil
      exchange.upstreamStatus = nil
      onRetry?(exchange, delay)
    } else if let error = result.error {
      attemptFailed(exchange, attempt, error, reusedConnection: result.reusedConnection)
    } else {
      exchange.request.endStream()
      finish(exchange, status: exchange.upstreamStatus ?? 502, error: nil)
    }
  }

  private func attemptFailed(_ exchange: Exchange, _ attempt: Exchange.Attempt, _ error: UpstreamError, reusedConnection: Bool) {
    if exchange.headSent && exchange.request.retractStream() {
      // Broken right after its head, before any of the reply was written: the app gets the
      // JSON error as if the head had never come (the connection stays in step).
      exchange.headSent = false
      exchange.bytesOut = 0
      fail(exchange, .upstream(error.failure))
    } else if exchange.headSent {
      // The app must not take a cut body for a whole one. Log it first: cutting the
      // connection runs its close callback at once (the worker would log a "client_closed"
      // and free the exchange under us).
      let request = exchange.request
      finish(exchange, status: exchange.upstreamStatus ?? 502, error: error.failure.code)
      request.abort()
    } else if !attempt.freshConnection && reusedConnection && error.mayBeAStaleConnection && Forwarder.isIdempotent(exchange.method) {
      // A pooled connection the upstream closed just as we sent on it: once more on a new one.
      forward(exchange, token: attempt.token, freshConnection: true)
    } else if reusedConnection && attempt.status == nil && error.mayBeAStaleConnection && !Forwarder.isRetrySafe(exchange) {
      // The same race, for a request that must not be sent twice: it may have reached the API.
      metrics.unsafeReuseFailures.add(1)
      fail(exchange, .upstream(.brokenAfterSend))
    } else if error.isRetryable && mayRetry(exchange) {
      onRetry?(exchange, config.retryDelay)
    } else {
      fail(exchange, .upstream(error.failure))
    }
  }

  /// The app went away: stop the upstream work and free the request.
  func clientGone(_ exchange: Exchange) {
    guard !exchange.finished else { return }
    exchange.timer?.cancel()
    if let transfer = exchange.transfer {
      transfer.cancel()
      exchange.transfer = nil
    }
    exchange.request.abort()
    finish(exchange, status: exchange.upstreamStatus ?? 499, error: "client_closed")
  }

  /// Answers with a proxy-made JSON error.
  func fail(_ exchange: Exchange, _ error: ProxyError) {
    guard !exchange.finished else { return }
    let body = error.body(requestID: exchange.requestID)
    // A reply to HEAD carries no body (ServerRequest.respond leaves it out).
    exchange.bytesOut = exchange.method == "HEAD" ? 0 : body.count
    exchange.request.respond(status: error.status, headers: error.headers(requestID: exchange.requestID), body: body)
    finish(exchange, status: error.status, error: error.code)
  }

  private func finish(_ exchange: Exchange, status: Int, error: String?) {
    guard !exchange.finished else { return }
    exchange.finished = true
    exchange.timer?.cancel()
    exchange.timer = nil
    onFinish?(exchange, status, error)
  }
}

/// The exchange is its attempt's delegate and its connection's drain observer: objects it
/// already is, so a request allocates no callbacks for them.
extension Exchange: UpstreamTransferDelegate, OutputDrainObserver {
  func transferHead(_ transfer: UpstreamTransfer, status: Int, headers: HTTPFields, contentLength: Int?) {
    attempt?.forwarder.attemptHead(self, transfer, status: status, headers: headers, contentLength: contentLength)
  }

  func transferData(_ transfer: UpstreamTransfer, _ bytes: UnsafeRawBufferPointer) -> Bool {
    attempt?.forwarder.attemptData(self, bytes) ?? true
  }

  func transferCompleted(_ transfer: UpstreamTransfer, _ result: UpstreamResult) {
    attempt?.forwarder.attemptCompleted(self, result)
  }

  func outputDrained() {
    guard paused, !finished else { return }
    paused = false
    transfer?.resume()
  }
}

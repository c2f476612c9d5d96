/// One app request on its way through the proxy, from arrival to the access-log line: what
/// the app sent, what the log line counts, the handles of the I/O under way, and its
/// `ExchangeLifecycle`, which decides every step.
final class Exchange {
  let request: ClientRequest
  let requestID: String
  let method: String
  let target: String
  let client: String
  let body: [UInt8]
  let appHeaders: HTTPFields
  let startedAt: Double  // monotonic
  let startedWall: Double
  /// Drives its attempts (it is their delegate and hands what they say to the forwarder).
  /// Strong: the forwarder holds no exchange, and an unowned reference costs a check per use.
  let forwarder: Forwarder

  var lifecycle: ExchangeLifecycle

  /// The app that sent it, by its name in the apps file (nil: no apps file, or not known).
  var app: String?
  /// Its W3C trace context (`traceparent` sent upstream, `trace_id` in the log).
  var trace: TraceContext?
  /// Monotonic seconds when the attempt under way started.
  var attemptStarted: Double = 0
  var upstreamMs: Double?
  var bytesOut = 0
  /// The first bytes of a 403 body: was it the API's IP-whitelist refusal?
  var refusalBody: [UInt8] = []
  var transfer: UpstreamTransfer?
  /// Bounds the admission wait, the token wait and the wait before a retry (the lifecycle's
  /// phase says which).
  var timer: Timer?

  /// `now` is wall-clock time (the log line's timestamp), `started` monotonic (its duration).
  init(request: ClientRequest, requestID: String, client: String, now: Double, started: Double, forwarder: Forwarder) {
    self.request = request
    self.requestID = requestID
    method = request.method
    target = request.target
    self.client = client
    body = request.body
    appHeaders = request.headers
    startedAt = started
    startedWall = now
    self.forwarder = forwarder
    lifecycle = forwarder.lifecycle(method: request.method, headers: request.headers)
  }

  var isFinished: Bool { lifecycle.isFinished }

  /// `now`: monotonic seconds when the answer ended.
  func logEntry(status: Int, error: String?, now: Double) -> AccessLogEntry {
    // One read of the lifecycle, not three (each is an exclusivity check).
    let lifecycle = self.lifecycle
    return AccessLogEntry(
      ts: startedWall, requestID: requestID, client: client, method: method, path: AccessLogEntry.path(of: target),
      status: status, upstreamStatus: lifecycle.upstreamStatus, durationMs: (now - startedAt) * 1000,
      upstreamMs: upstreamMs, bytesIn: body.count, bytesOut: bytesOut, attempts: lifecycle.attempts, reauth: lifecycle.reauth,
      error: error, app: app, trace: trace)
  }
}

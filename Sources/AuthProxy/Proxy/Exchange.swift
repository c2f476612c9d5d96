/// One app request on its way through the proxy, from arrival to the access-log line.
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

  /// The app that sent it, by its name in the apps file (nil: no apps file, or not known).
  var app: String?
  /// It holds an admission slot (`Admission`) until it finishes.
  var admitted = false
  /// Its W3C trace context (`traceparent` sent upstream, `trace_id` in the log).
  var trace: TraceContext?
  var attempts = 0
  var upstreamStatus: Int?
  var upstreamMs: Double?
  var bytesOut = 0
  var headSent = false
  var paused = false
  var finished = false
  var reauth = false
  /// Set when a 401 answered our token: the answer is dropped and the request replayed once
  /// with a newer token.
  var awaitingReauth = false
  /// The first bytes of a 403 body: was it the API's IP-whitelist refusal?
  var refusalBody: [UInt8] = []
  /// Set when this attempt's answer is to be dropped for another attempt after this many seconds.
  var retryAfter: Double?
  /// The oldest token generation this request may still be sent with.
  var minimumGeneration: UInt64 = 0
  var transfer: UpstreamTransfer?
  /// The attempt under way: who drives it, with which token, since when, what it answered.
  struct Attempt {
    let forwarder: Forwarder
    let token: TokenSnapshot
    let started: Double  // monotonic
    var status: Int?
    let freshConnection: Bool
  }
  var attempt: Attempt?
  /// Bounds the wait for a token, or for the upstream's answer.
  var timer: Timer?

  /// `now` is wall-clock time (the log line's timestamp), `started` monotonic (its duration).
  init(request: ClientRequest, requestID: String, client: String, now: Double, started: Double) {
    self.request = request
    self.requestID = requestID
    method = request.method
    target = request.target
    self.client = client
    body = request.body
    appHeaders = request.headers
    startedAt = started
    startedWall = now
  }

  /// `now`: monotonic seconds when the answer ended.
  func logEntry(status: Int, error: String?, now: Double) -> AccessLogEntry {
    AccessLogEntry(
      ts: startedWall, requestID: requestID, client: client, method: method, path: AccessLogEntry.path(of: target),
      status: status, upstreamStatus: upstreamStatus, durationMs: (now - startedAt) * 1000,
      upstreamMs: upstreamMs, bytesIn: body.count, bytesOut: bytesOut, attempts: attempts, reauth: reauth, error: error, app: app,
      trace: trace)
  }
}

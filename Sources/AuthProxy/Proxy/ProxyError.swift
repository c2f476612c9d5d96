/// An answer the proxy makes itself. Every such answer is rendered here, and only here, as the
/// JSON of SPEC §4: `{"error":{"code","message","request_id"}}`.
public struct ProxyError: Error, Sendable, Equatable {
  public var status: Int
  public var code: String
  /// Names the cause in our words; never a secret, never upstream text.
  public var message: String
  /// `Proxy-Authenticate` of a 407 (`--apps-file`).
  public var challenge: String?
  /// Seconds for a `Retry-After` field (our 429s).
  public var retryAfter: Int?

  public init(status: Int, code: String, message: String, retryAfter: Int? = nil) {
    self.status = status
    self.code = code
    self.message = message
    self.retryAfter = retryAfter
  }

  public static func badRequest(_ message: String) -> ProxyError { ProxyError(status: 400, code: "bad_request", message: message) }
  public static func forbidden(_ message: String) -> ProxyError { ProxyError(status: 403, code: "forbidden", message: message) }
  public static func tooLarge(limit: Int) -> ProxyError {
    ProxyError(status: 413, code: "body_too_large", message: "request body is larger than --max-body (\(limit) bytes)")
  }
  public static func noToken(_ why: String) -> ProxyError {
    ProxyError(status: 503, code: "no_token", message: "no valid API token: \(why)")
  }
  /// No token because the API refused us (503), or because it cannot be reached at all: then
  /// the answer is the 502/504 of that cause, e.g. "upstream certificate not trusted".
  public static func noToken(_ failure: TokenFailure) -> ProxyError {
    if case .unreachable(let cause) = failure { return .upstream(cause) }
    return .noToken(failure.description)
  }
  /// Our own 429: a limit of ours (or the API's pause) held the request back too long.
  public static func rateLimited(_ why: String, retryAfter: Int) -> ProxyError {
    ProxyError(status: 429, code: "rate_limited", message: why, retryAfter: retryAfter)
  }
  public static func upstream(_ failure: UpstreamFailure) -> ProxyError {
    ProxyError(status: failure.status, code: failure.code, message: failure.message)
  }

  public func body(requestID: String) -> [UInt8] {
    let inner = JSONText.object([
      ("code", JSONText.quoted(code)), ("message", JSONText.quoted(message)), ("request_id", JSONText.quoted(requestID)),
    ])
    return Array(JSONText.object([("error", inner)]).utf8)
  }

  public func headers(requestID: String) -> [(name: String, value: String)] {
    var fields: [(name: String, value: String)] = [("Content-Type", "application/json"), ("X-Request-ID", requestID)]
    if let challenge { fields.append(("Proxy-Authenticate", challenge)) }
    if let retryAfter { fields.append(("Retry-After", String(retryAfter))) }
    return fields
  }

  /// A whole HTTP/1.1 response that closes the connection, for requests refused by the framing
  /// check or a timeout before they became requests.
  public func rawResponse(requestID: String) -> [UInt8] {
    let body = body(requestID: requestID)
    let head =
      "HTTP/1.1 \(status) \(ResponseHeadWriter.reason(status))\r\nContent-Type: application/json\r\nX-Request-ID: \(requestID)\r\n"
      + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
    return Array(head.utf8) + body
  }
}

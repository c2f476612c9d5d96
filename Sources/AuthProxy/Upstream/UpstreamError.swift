/// Why an attempt on the data path got no whole answer: the data path's own failure vocabulary
/// (libcurl, which speaks in numbered codes, carries only the control plane).
public enum UpstreamError: Error, Sendable, Equatable {
  /// The host name has no address.
  case unresolvable
  /// The upstream refused the connection.
  case refused
  /// No connection, no answer, or a gap in the body, within the timeout.
  case timedOut
  case handshakeFailed
  case notTrusted
  case pinMismatch
  /// The connection broke while the request was being sent, or while waiting for the answer.
  case sendFailed
  case receiveFailed
  /// The connection closed before any byte of an answer.
  case emptyReply
  /// The connection closed in the middle of an answer.
  case cutBody
  /// The answer is not valid HTTP/1.1.
  case invalidAnswer
  /// No upstream connection came free within the timeout (`--max-upstream-connections`).
  case queueTimedOut
  /// The attempt was abandoned (its app went away); nobody hears this one.
  case abandoned

  /// The answer the app gets, in our words.
  public var failure: UpstreamFailure {
    switch self {
    case .timedOut: UpstreamFailure(status: 504, code: "upstream_timeout", message: "the upstream did not answer in time")
    case .queueTimedOut:
      UpstreamFailure(
        status: 504, code: "upstream_timeout", message: "no upstream connection came free in time (--max-upstream-connections)")
    case .notTrusted: UpstreamFailure(status: 502, code: "upstream_tls", message: "upstream certificate not trusted")
    case .pinMismatch: UpstreamFailure(status: 502, code: "upstream_tls", message: "upstream key does not match the pinned key")
    case .handshakeFailed: UpstreamFailure(status: 502, code: "upstream_tls", message: "TLS handshake with the upstream failed")
    case .unresolvable: UpstreamFailure(status: 502, code: "upstream_dns", message: "the upstream host name does not resolve")
    case .refused: UpstreamFailure(status: 502, code: "upstream_unreachable", message: "the upstream refused the connection")
    case .emptyReply: UpstreamFailure(status: 502, code: "upstream_empty", message: "the upstream closed the connection without answering")
    case .invalidAnswer: UpstreamFailure(status: 502, code: "upstream_protocol", message: "the upstream's answer is not valid HTTP/1.1")
    case .sendFailed, .receiveFailed, .cutBody:
      UpstreamFailure(status: 502, code: "upstream_broken", message: "the connection to the upstream broke")
    case .abandoned: UpstreamFailure(status: 499, code: "client_closed", message: "the app went away")
    }
  }

  /// The upstream cannot have acted on the request (connect, name, handshake, a connection that
  /// broke or closed, a timeout): another attempt may go, for a request that may be sent twice.
  /// Never trust or pin failures, nor an answer that was not HTTP: they will not heal.
  var isRetryable: Bool {
    switch self {
    case .unresolvable, .refused, .timedOut, .handshakeFailed, .sendFailed, .receiveFailed, .emptyReply, .cutBody: true
    // A wait for a connection that already took the whole --timeout is not waited again.
    case .notTrusted, .pinMismatch, .invalidAnswer, .abandoned, .queueTimedOut: false
    }
  }

  /// What a kept-alive connection the upstream closed just as the request went out looks like.
  var mayBeAStaleConnection: Bool { self == .emptyReply || self == .sendFailed || self == .receiveFailed }
}

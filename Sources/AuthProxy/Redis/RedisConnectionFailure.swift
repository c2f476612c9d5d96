/// Why a Redis connection ended or never became usable. Descriptions name the cause in our
/// words and hold no secret (Redis's own AUTH errors never echo the password).
enum RedisConnectionFailure: Error, Sendable, Equatable, CustomStringConvertible {
  case unresolved
  case unreachable
  case timedOut
  case tls(String)
  case authentication(String)
  /// The server is not (or no longer) the master: a failover happened.
  case notMaster
  case closed
  case protocolError(String)

  var description: String {
    switch self {
    case .unresolved: "the name does not resolve"
    case .unreachable: "connection refused or no route"
    case .timedOut: "no answer in time"
    case .tls(let why): "TLS: \(why)"
    case .authentication(let why): "Redis refused the credentials (\(why))"
    case .notMaster: "the server is not the master (failover)"
    case .closed: "the connection closed"
    case .protocolError(let why): "protocol error (\(why))"
    }
  }

  /// The `reason` label of `authproxy_token_store_failures_total`.
  var metricReason: String {
    switch self {
    case .unresolved, .unreachable, .closed: "unreachable"
    case .timedOut: "timeout"
    case .tls: "tls"
    case .authentication: "auth"
    case .notMaster: "failover"
    case .protocolError: "protocol"
    }
  }
}

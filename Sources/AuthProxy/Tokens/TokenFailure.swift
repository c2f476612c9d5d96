/// Why the API gave us no token: what the 503 body, `/readyz` and the logs say.
public enum TokenFailure: Error, Sendable, Equatable, CustomStringConvertible {
  case invalidCredentials
  case ipNotAuthorized
  case forbidden
  case rateLimited(retryAfter: Double?)
  case refreshRejected
  /// A logout's token was refused: already expired or revoked (the API's 401).
  case tokenRejected
  case apiError(status: Int)
  case badResponse
  /// The token's expiry was already past when it arrived (clock skew between us and the API).
  case expiredOnArrival
  case unreachable(UpstreamFailure)

  /// Classifies an auth call's non-2xx answer by status and error code, never by message text.
  public static func from(status: Int, body: [UInt8], retryAfter: Double?, isRefresh: Bool) -> TokenFailure {
    switch status {
    case 401: return isRefresh ? .refreshRejected : .invalidCredentials
    case 403:
      let code = APIResponse.errorCode(from: body)?.uppercased()
      return code == "FORBIDDEN" || code == "IP_NOT_ALLOWED" ? .ipNotAuthorized : .forbidden
    case 429: return .rateLimited(retryAfter: retryAfter)
    case 400: return isRefresh ? .refreshRejected : .apiError(status: status)
    default: return .apiError(status: status)
    }
  }

  public var description: String {
    switch self {
    case .invalidCredentials: "invalid credentials: the API refused the username or password"
    case .ipNotAuthorized: "IP address not authorized by the API: the egress IP is not on the account's whitelist"
    case .forbidden: "the API refused the login (403)"
    case .rateLimited: "rate limited by the API: too many login attempts"
    case .refreshRejected: "the API refused the refresh token"
    case .tokenRejected: "the API refused the access token (expired or already revoked)"
    case .apiError(400): "the API refused the login request as invalid (HTTP 400): are the username and password set?"
    case .apiError(let status): "the API answered the login with HTTP \(status)"
    case .badResponse: "the API's login answer held no usable token"
    case .expiredOnArrival: "the API issued a token that had already expired (is this host's clock right?)"
    case .unreachable(let failure): "upstream unreachable: \(failure.message)"
    }
  }

  /// A short, label-safe name for metrics and logs.
  public var code: String {
    switch self {
    case .invalidCredentials: "invalid_credentials"
    case .ipNotAuthorized: "ip_not_authorized"
    case .forbidden: "forbidden"
    case .rateLimited: "rate_limited"
    case .refreshRejected: "refresh_rejected"
    case .tokenRejected: "token_rejected"
    case .apiError: "api_error"
    case .badResponse: "bad_response"
    case .expiredOnArrival: "expired_on_arrival"
    case .unreachable: "unreachable"
    }
  }

  /// The wait the API asked for, if any.
  public var retryAfter: Double? {
    if case .rateLimited(let after) = self { return after }
    return nil
  }
}

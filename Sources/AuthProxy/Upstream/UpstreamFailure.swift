/// Why an upstream attempt got no answer, in our words: from the data path's `UpstreamError`,
/// or from the control plane's curl error codes (mapped once, here).
public struct UpstreamFailure: Error, Sendable, Equatable {
  public var status: Int  // 502 or 504 for the app
  public var code: String
  public var message: String

  /// A request that must not be sent twice went out on a kept-alive connection that broke
  /// before any answer: the API may have acted on it, so it is not sent again.
  public static let brokenAfterSend = UpstreamFailure(
    status: 502, code: "upstream_broken_after_send",
    message: "the upstream connection broke before any answer; the request may have reached the API and was not sent again")

  public static func from(curlCode: Int32) -> UpstreamFailure {
    switch curlCode {
    case 28: UpstreamFailure(status: 504, code: "upstream_timeout", message: "the upstream did not answer in time")
    case 60: UpstreamFailure(status: 502, code: "upstream_tls", message: "upstream certificate not trusted")
    case 90, 91: UpstreamFailure(status: 502, code: "upstream_tls", message: "upstream key does not match the pinned key")
    case 35, 58, 59, 66, 80, 83:
      UpstreamFailure(status: 502, code: "upstream_tls", message: "TLS handshake with the upstream failed")
    case 6: UpstreamFailure(status: 502, code: "upstream_dns", message: "the upstream host name does not resolve")
    case 7: UpstreamFailure(status: 502, code: "upstream_unreachable", message: "the upstream refused the connection")
    case 52: UpstreamFailure(status: 502, code: "upstream_empty", message: "the upstream closed the connection without answering")
    case 1, 8: UpstreamFailure(status: 502, code: "upstream_protocol", message: "the upstream's answer is not valid HTTP/1.1")
    case 16, 18, 55, 56, 92:
      UpstreamFailure(status: 502, code: "upstream_broken", message: "the connection to the upstream broke")
    default: UpstreamFailure(status: 502, code: "upstream_error", message: "the upstream request failed (curl error \(curlCode))")
    }
  }
}

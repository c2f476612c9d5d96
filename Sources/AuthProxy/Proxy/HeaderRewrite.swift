/// Second step of the chain: the headers that go upstream and the ones that come back.
public struct HeaderRewrite: Sendable {
  public let userAgent: String

  public init(userAgent: String) { self.userAgent = userAgent }

  /// Never forwarded from the app: credentials, hop-by-hop and framing headers, and the ones
  /// the proxy sets itself.
  static let droppedRequestHeaders: Set<String> = [
    "authorization", "proxy-authorization", "connection", "keep-alive", "te", "trailer", "transfer-encoding",
    "upgrade", "host", "content-length", "expect", "x-request-id", "user-agent", "proxy-connection",
  ]
  static let droppedResponseHeaders: Set<String> = [
    "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "proxy-connection",
    "proxy-authenticate", "x-request-id",
  ]

  /// curl header lines for the upstream request.
  public func upstreamHeaderLines(from appHeaders: [(name: String, value: String)], authorization: Secret, requestID: String) -> [String] {
    let named = connectionNamed(appHeaders)
    var lines: [String] = []
    lines.reserveCapacity(appHeaders.count + 6)
    var sawAccept = false
    var sawContentType = false
    for (name, value) in appHeaders {
      let lower = name.lowercased()
      if HeaderRewrite.droppedRequestHeaders.contains(lower) || lower.hasPrefix("proxy-") || named.contains(lower) { continue }
      if lower == "accept" { sawAccept = true }
      if lower == "content-type" { sawContentType = true }
      // "Name:" would tell curl to remove the header; "Name;" sends it empty.
      lines.append(value.isEmpty ? "\(name);" : "\(name): \(value)")
    }
    lines.append("Authorization: \(authorization.reveal)")
    lines.append("X-Request-ID: \(requestID)")
    lines.append("User-Agent: \(userAgent)")
    // Stop curl from adding headers the app did not send.
    lines.append("Expect:")
    if !sawAccept { lines.append("Accept:") }
    if !sawContentType { lines.append("Content-Type:") }
    return lines
  }

  /// Response headers for the app: the upstream's, less hop-by-hop ones, plus our request id.
  public func responseHeaders(from upstream: [(name: String, value: String)], requestID: String) -> [(name: String, value: String)] {
    let named = connectionNamed(upstream)
    var headers = upstream.filter { header in
      let lower = header.name.lowercased()
      return !HeaderRewrite.droppedResponseHeaders.contains(lower) && !named.contains(lower)
    }
    headers.append(("X-Request-ID", requestID))
    return headers
  }

  /// Header names listed in `Connection` (they are hop-by-hop too).
  private func connectionNamed(_ headers: [(name: String, value: String)]) -> Set<String> {
    var names: Set<String> = []
    for (name, value) in headers where name.lowercased() == "connection" {
      for token in value.split(separator: ",") { names.insert(token.trimmingSpaces().lowercased()) }
    }
    return names
  }
}

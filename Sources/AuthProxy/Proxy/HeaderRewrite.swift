/// Second step of the chain: the headers that go upstream and the ones that come back.
public struct HeaderRewrite: Sendable {
  public let userAgent: String

  public init(userAgent: String) { self.userAgent = userAgent }

  /// Never forwarded from the app: credentials, hop-by-hop and framing headers, the ones the
  /// proxy sets itself, and a bare `Proxy`, which a CGI upstream would read as its `HTTP_PROXY`
  /// ("httpoxy"; `Proxy-*` goes by its prefix).
  static let droppedRequestHeaders: [String] = [
    "authorization", "proxy-authorization", "connection", "keep-alive", "close", "te", "trailer", "transfer-encoding",
    "upgrade", "host", "content-length", "expect", "x-request-id", "user-agent", "proxy-connection", "proxy",
    "traceparent",
  ]
  static let droppedResponseHeaders: [String] = [
    "connection", "keep-alive", "close", "te", "trailer", "transfer-encoding", "upgrade", "proxy-connection",
    "proxy-authenticate", "x-request-id",
  ]
  /// The same as bytes, by length: a field name is compared only with those of its length.
  private static let droppedRequestNamesByLength = byLength(droppedRequestHeaders)
  private static let droppedResponseNamesByLength = byLength(droppedResponseHeaders)
  private static let proxyPrefix = Array("proxy-".utf8)

  private static func byLength(_ names: [String]) -> [[[UInt8]]] {
    var table = [[[UInt8]]](repeating: [], count: 32)
    for name in names { table[name.utf8.count].append(Array(name.utf8)) }
    return table
  }

  /// The upstream request's head, ready for the wire: request line, `Host`, the app's headers
  /// less the dropped ones (in order, byte for byte), ours, and the framing of a body of
  /// `bodyLength` bytes (which goes out after it).
  public func upstreamHead(
    method: String, target: String, host: String, appHeaders: [(name: String, value: String)], authorization: Secret,
    requestID: String, bodyLength: Int
  ) -> [UInt8] {
    upstreamHead(
      method: method, target: target, host: host, appFields: HTTPFields(appHeaders), authorization: authorization,
      requestID: requestID, bodyLength: bodyLength)
  }

  /// `upstreamHead` on the fields as the codec read them: the lines kept are copied as received
  /// (field values are bytes: obs-text passes unchanged).
  func upstreamHead(
    method: String, target: String, host: String, appFields: HTTPFields, authorization: Secret, requestID: String,
    bodyLength: Int, trace: TraceContext? = nil
  ) -> [UInt8] {
    let named = connectionNamed(appFields)
    var out: [UInt8] = []
    out.reserveCapacity(256 + appFields.bytes.count)
    func line(_ name: String, _ value: String) { out.appendFieldLine(name, value) }
    out.appendUTF8(method)
    out.append(HTTPBytes.sp)
    out.appendUTF8(target)
    out.appendUTF8(" HTTP/1.1\r\n")
    line("Host", host)
    let dropsTracestate = trace?.keepsTracestate != true
    for i in appFields.indices where keepsRequestField(appFields, at: i, connectionNamed: named) {
      if dropsTracestate && appFields.name(at: i, is: FieldName.tracestate) { continue }
      out.append(contentsOf: appFields.line(at: i))
    }
    line("Authorization", authorization.reveal)
    line("X-Request-ID", requestID)
    if let trace {
      out.appendUTF8("traceparent: ")
      trace.appendTraceparent(to: &out)
      out.append(HTTPBytes.cr)
      out.append(HTTPBytes.lf)
    }
    line("User-Agent", userAgent)
    if bodyLength > 0 || HeaderRewrite.framesAnEmptyBody(method) { line("Content-Length", String(bodyLength)) }
    out.append(HTTPBytes.cr)
    out.append(HTTPBytes.lf)
    return out
  }

  /// Methods whose empty body still gets `Content-Length: 0` (a switch: an array literal here
  /// was built for every request).
  private static func framesAnEmptyBody(_ method: String) -> Bool {
    switch method {
    case "POST", "PUT", "PATCH": true
    default: false
    }
  }

  /// Does the app's field at `position` go upstream? Not the dropped ones, not `Proxy-*`, not
  /// those its `Connection` names (`named`: `connectionNamed(fields)`).
  private func keepsRequestField(_ fields: HTTPFields, at position: Int, connectionNamed named: Set<String>) -> Bool {
    let length = fields.nameLength(at: position)
    if length < HeaderRewrite.droppedRequestNamesByLength.count,
      HeaderRewrite.droppedRequestNamesByLength[length].contains(where: { fields.name(at: position, is: $0) })
    {
      return false
    }
    if fields.name(at: position, hasPrefix: HeaderRewrite.proxyPrefix) { return false }
    return named.isEmpty || !named.contains(fields[position].name.lowercased())
  }

  /// Response headers for the app: the upstream's, less hop-by-hop ones, plus our request id.
  public func responseHeaders(from upstream: [(name: String, value: String)], requestID: String) -> [(name: String, value: String)] {
    Array(responseFields(from: HTTPFields(upstream), requestID: requestID))
  }

  /// `responseHeaders` on the parser's fields: the lines kept are copied as received. (The
  /// data path writes the kept lines straight into the app's head: `keepsResponseField`.)
  func responseFields(from upstream: HTTPFields, requestID: String) -> HTTPFields {
    let named = connectionNamed(upstream)
    var fields = HTTPFields()
    for i in upstream.indices where keepsResponseField(upstream, at: i, connectionNamed: named) {
      fields.append(upstream, at: i)
    }
    fields.append(name: "X-Request-ID".utf8, value: requestID.utf8)
    return fields
  }

  /// Does the upstream's field at `position` go to the app? Not hop-by-hop ones, not those
  /// its `Connection` names (`named`: `connectionNamed(fields)`), not its request id.
  func keepsResponseField(_ fields: HTTPFields, at position: Int, connectionNamed named: Set<String>) -> Bool {
    let length = fields.nameLength(at: position)
    if length < HeaderRewrite.droppedResponseNamesByLength.count,
      HeaderRewrite.droppedResponseNamesByLength[length].contains(where: { fields.name(at: position, is: $0) })
    {
      return false
    }
    return named.isEmpty || !named.contains(fields[position].name.lowercased())
  }

  /// Header names listed in `Connection` (they are hop-by-hop too). `close` and `keep-alive`,
  /// the usual values, name fields dropped anyway (`Close` is a reserved field name, RFC 9110
  /// §18.4): no set is built for them.
  func connectionNamed(_ fields: HTTPFields) -> Set<String> {
    var names: Set<String> = []
    for i in fields.indices where fields.name(at: i, is: FieldName.connection) {
      HeaderRewrite.addConnectionTokens(of: fields.value(at: i), to: &names)
    }
    return names
  }

  private static func addConnectionTokens<Bytes: BidirectionalCollection<UInt8>>(of value: Bytes, to names: inout Set<String>)
  where Bytes.SubSequence == Bytes {
    // Split by hand: `split` would allocate an array for the usual single "keep-alive".
    var rest = value
    while !rest.isEmpty {
      let comma = rest.firstIndex(of: HTTPBytes.comma) ?? rest.endIndex
      var token = rest[..<comma]
      rest = comma == rest.endIndex ? rest[rest.endIndex...] : rest[rest.index(after: comma)...]
      while let first = token.first, first == HTTPBytes.sp || first == HTTPBytes.htab { token = token.dropFirst() }
      while let last = token.last, last == HTTPBytes.sp || last == HTTPBytes.htab { token = token.dropLast() }
      if token.isEmpty { continue }
      let text = String(decoding: token, as: UTF8.self)
      if text.equalsIgnoringASCIICase("close") || text.equalsIgnoringASCIICase("keep-alive") { continue }
      names.insert(text.lowercased())
    }
  }
}

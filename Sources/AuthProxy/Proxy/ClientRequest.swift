import Glibc

/// One request received on a `ClientConnection`, and its reply: a complete one (`respond`) or
/// a streamed one (`startStream`, `send`…, `endStream`), or none (`abort` cuts the connection).
/// After the reply is complete, or the client went away, every call is a no-op.
final class ClientRequest {
  let method: String
  let target: String
  /// The app's fields as it sent them (values are bytes: obs-text too).
  let headers: HTTPFields
  let body: [UInt8]
  let isHTTP10: Bool
  /// The connection stays open after this reply.
  let keepAlive: Bool
  private(set) weak var connection: ClientConnection?
  private(set) var isFinished = false
  private var chunked = false
  private var bodyless = false
  /// Where the streamed reply starts in the connection's output, until a flush writes it.
  private var streamMark: ClientConnection.OutputMark?

  init(_ head: RequestHead, connection: ClientConnection) {
    method = head.method
    target = head.target
    headers = head.headers
    body = head.body
    isHTTP10 = head.isHTTP10
    var tokens: [String] = []
    for i in head.headers.indices where head.headers.name(at: i, is: FieldName.connection) {
      tokens += String(decoding: head.headers.value(at: i), as: UTF8.self).lowercased().split(separator: ",").map {
        $0.trimmingSpaces()
      }
    }
    keepAlive = isHTTP10 ? tokens.contains("keep-alive") : !tokens.contains("close")
    self.connection = connection
  }

  /// The first header of that name, any case.
  func header(_ name: String) -> String? { header(named: Array(name.lowercased().utf8)) }

  /// The first header of that (lower-case, as `FieldName`'s) name.
  func header(named lowercase: [UInt8]) -> String? { headers.value(named: lowercase) }

  var clientAddress: String { connection?.peer.address ?? "" }
  /// The uid of a Unix-socket client (`SO_PEERCRED`); nil on TCP.
  var clientUID: UInt32? { connection?.peerUID }

  /// The client went away: nothing more may be written.
  func detach() { isFinished = true }

  /// A complete reply in one go. A reply to HEAD has no body but the length a GET would get
  /// (the caller's own Content-Length wins).
  func respond(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
    guard !isFinished, let connection else { return }
    isFinished = true
    let fields = HTTPFields(headers)
    let hasLength = fields.firstIndex(named: FieldName.contentLength) != nil
    var out = head(
      status: status, fields: fields, keep: { _ in true }, adding: nil, hasLength: hasLength,
      framing: hasLength ? nil : ("Content-Length", String(body.count)))
    if method != "HEAD" && ResponseHeadWriter.allowsBody(status) { out.append(contentsOf: body) }
    connection.queue(out)
    connection.finished(self)
  }

  /// Starts a streamed reply with the fields of `fields` that `keep` accepts (their lines as
  /// they are: the upstream's, straight from its parser) and one of ours, `adding`. The framing
  /// is the proxy's own, whatever the upstream's was (RFC 9112 §6.3): with a known
  /// `contentLength` (the parser's one value) one `Content-Length` and the body as is; without
  /// one, chunked (HTTP/1.1) or until the connection closes (HTTP/1.0). A HEAD or 304 reply
  /// carries the length the body would have had.
  func startStream(status: Int, fields: HTTPFields, contentLength: Int?, keep: (Int) -> Bool, adding: (name: String, value: String)?) {
    guard !isFinished, let connection else { return }
    bodyless = method == "HEAD" || !ResponseHeadWriter.allowsBody(status)
    chunked = !bodyless && contentLength == nil && !isHTTP10
    var framing: (String, String)?
    if let contentLength, status != 204 {
      framing = ("Content-Length", String(contentLength))
    } else if chunked {
      framing = ("Transfer-Encoding", "chunked")
    }
    streamMark = connection.outputMark
    connection.queue(
      head(status: status, fields: fields, keep: keep, adding: adding, hasLength: contentLength != nil, framing: framing))
  }

  /// Takes back a streamed reply of which nothing reached the socket yet (the upstream's answer
  /// turned out broken right after its head): the caller answers with an error instead. False
  /// once any of it was written: then only `abort` is left.
  func retractStream() -> Bool {
    guard !isFinished, let connection, let mark = streamMark, connection.retract(to: mark) else { return false }
    streamMark = nil
    chunked = false
    bodyless = false
    return true
  }

  /// Queues body bytes. `drainObserver` hears once the output queued so far fell to the low
  /// watermark, if it was above it.
  func send(_ bytes: UnsafeRawBufferPointer, drainObserver: (any OutputDrainObserver)? = nil) {
    guard !isFinished, !bodyless, bytes.count > 0, let connection else { return }
    if chunked {
      connection.queue(Array(String(bytes.count, radix: 16).utf8) + [0x0D, 0x0A])
      connection.queue(bytes)
      connection.queue([0x0D, 0x0A], drainObserver: drainObserver)
    } else {
      connection.queue(bytes, drainObserver: drainObserver)
    }
  }

  /// Bytes queued to this client and not yet written to its socket.
  var pendingOutput: Int { connection?.pendingOutput ?? 0 }

  /// Completes a streamed reply.
  func endStream() {
    guard !isFinished, let connection else { return }
    isFinished = true
    if chunked { connection.queue(Array("0\r\n\r\n".utf8)) }
    connection.finished(self)
  }

  /// Cuts the connection without completing the reply: the app must not take a truncated body
  /// for a whole one.
  func abort() {
    guard !isFinished else { return }
    isFinished = true
    connection?.abort()
  }

  private func head(
    status: Int, fields: HTTPFields, keep: (Int) -> Bool, adding: (name: String, value: String)?, hasLength: Bool,
    framing: (String, String)?
  ) -> [UInt8] {
    // An HTTP/1.0 stream without a length ends with the connection; so does every reply
    // while the proxy drains.
    let closing =
      !keepAlive || (connection?.isDraining ?? false) || (isHTTP10 && framing == nil && !bodyless && !hasLength)
    if closing { connection?.closeAfterReply() }
    return ResponseHeadWriter.write(
      version: isHTTP10 ? "HTTP/1.0" : "HTTP/1.1", status: status, fields: fields, keep: keep, adding: adding,
      framing: framing, connection: closing ? "close" : (isHTTP10 ? "keep-alive" : nil))
  }
}

/// Response heads as bytes.
enum ResponseHeadWriter {
  static func allowsBody(_ status: Int) -> Bool { status >= 200 && status != 204 && status != 304 }

  /// The head: status line, the lines of the `fields` that `keep` accepts as they are, the
  /// `adding` field, `Date` unless there is one, the framing field and `Connection`.
  static func write(
    version: String, status: Int, fields: HTTPFields, keep: (Int) -> Bool, adding: (name: String, value: String)?,
    framing: (String, String)?, connection: String?
  ) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(fields.bytes.count + 128)
    func line(_ name: String, _ value: String) { out.appendFieldLine(name, value) }
    out.appendUTF8(version)
    out.append(0x20)
    JSONText.appendInt(status, to: &out)
    out.append(0x20)
    out.appendUTF8(reason(status))
    out.append(contentsOf: [0x0D, 0x0A])
    var hasDate = false
    for i in fields.indices where keep(i) {
      out.append(contentsOf: fields.line(at: i))
      if !hasDate && fields.name(at: i, is: FieldName.date) { hasDate = true }
    }
    if let adding { line(adding.name, adding.value) }
    if !hasDate { line("Date", HTTPDate.now()) }
    if let (name, value) = framing, status >= 200 && status != 204 { line(name, value) }
    if let connection { line("Connection", connection) }
    out.append(contentsOf: [0x0D, 0x0A])
    return out
  }

  static func reason(_ status: Int) -> String {
    switch status {
    case 100: "Continue"
    case 200: "OK"
    case 201: "Created"
    case 202: "Accepted"
    case 203: "Non-Authoritative Information"
    case 204: "No Content"
    case 205: "Reset Content"
    case 206: "Partial Content"
    case 300: "Multiple Choices"
    case 301: "Moved Permanently"
    case 302: "Found"
    case 303: "See Other"
    case 304: "Not Modified"
    case 307: "Temporary Redirect"
    case 308: "Permanent Redirect"
    case 400: "Bad Request"
    case 401: "Unauthorized"
    case 402: "Payment Required"
    case 403: "Forbidden"
    case 404: "Not Found"
    case 405: "Method Not Allowed"
    case 406: "Not Acceptable"
    case 407: "Proxy Authentication Required"
    case 408: "Request Timeout"
    case 409: "Conflict"
    case 410: "Gone"
    case 411: "Length Required"
    case 412: "Precondition Failed"
    case 413: "Content Too Large"
    case 414: "URI Too Long"
    case 415: "Unsupported Media Type"
    case 416: "Range Not Satisfiable"
    case 422: "Unprocessable Content"
    case 425: "Too Early"
    case 428: "Precondition Required"
    case 429: "Too Many Requests"
    case 431: "Request Header Fields Too Large"
    case 500: "Internal Server Error"
    case 501: "Not Implemented"
    case 502: "Bad Gateway"
    case 503: "Service Unavailable"
    case 504: "Gateway Timeout"
    default:
      switch status / 100 {
      case 1: "Informational"
      case 2: "Success"
      case 3: "Redirection"
      case 4: "Client Error"
      default: "Server Error"
      }
    }
  }
}

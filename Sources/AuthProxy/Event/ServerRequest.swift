import CEvent
import CShims
import Glibc

/// One request received by an `HTTPServer`, and its reply.
///
/// evhttp owns the underlying `evhttp_request` until the reply is complete (`respond`,
/// `endStream` or `abort`); after that this object must not touch it, which `isFinished` guards.
public final class ServerRequest {
  private let raw: OpaquePointer
  public private(set) var isFinished = false
  private var drained: (() -> Void)?

  init(raw: OpaquePointer) { self.raw = raw }

  /// evhttp parsed the request line and headers; false when it gave up on them (it then
  /// calls us with no URI and a 400/413 code).
  public var isWellFormed: Bool { evhttp_request_get_uri(raw) != nil }

  public var method: String {
    switch evhttp_request_get_command(raw) {
    case EVHTTP_REQ_GET: "GET"
    case EVHTTP_REQ_POST: "POST"
    case EVHTTP_REQ_HEAD: "HEAD"
    case EVHTTP_REQ_PUT: "PUT"
    case EVHTTP_REQ_DELETE: "DELETE"
    case EVHTTP_REQ_OPTIONS: "OPTIONS"
    case EVHTTP_REQ_PATCH: "PATCH"
    case EVHTTP_REQ_TRACE: "TRACE"
    case EVHTTP_REQ_CONNECT: "CONNECT"
    default: "UNKNOWN"
    }
  }

  /// The request target exactly as the client sent it.
  public var target: String {
    guard let uri = evhttp_request_get_uri(raw) else { return "" }
    return String(cString: uri)
  }

  /// The connection this request came on (nil once the client went away).
  public var connection: ConnectionID? { evhttp_request_get_connection(raw).map(ConnectionID.init) }

  /// The client's IP address, as text.
  public var clientAddress: String { connection?.peer.address ?? "" }

  /// The client's TCP port.
  public var clientPort: Int { connection?.peer.port ?? 0 }

  /// Request headers in the order received.
  public var headers: [(name: String, value: String)] {
    var result: [(name: String, value: String)] = []
    var kv = ap_evkeyvalq_first(evhttp_request_get_input_headers(raw))
    while let entry = kv {
      if let key = entry.pointee.key, let value = entry.pointee.value {
        result.append((String(cString: key), String(cString: value)))
      }
      kv = ap_evkeyval_next(entry)
    }
    return result
  }

  public func header(_ name: String) -> String? {
    guard let value = evhttp_find_header(evhttp_request_get_input_headers(raw), name) else { return nil }
    return String(cString: value)
  }

  /// The whole request body (evhttp 2.1 buffers it before calling us).
  public var body: [UInt8] {
    guard let buffer = evhttp_request_get_input_buffer(raw) else { return [] }
    let length = evbuffer_get_length(buffer)
    guard length > 0 else { return [] }
    return [UInt8](unsafeUninitializedCapacity: length) { out, count in
      count = Int(evbuffer_copyout(buffer, out.baseAddress, length))
    }
  }

  private func setOutputHeaders(_ headers: [(name: String, value: String)]) {
    let output = evhttp_request_get_output_headers(raw)
    for (name, value) in headers { evhttp_add_header(output, name, value) }
  }

  /// A complete reply in one go.
  public func respond(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
    guard !isFinished else { return }
    isFinished = true
    setOutputHeaders(headers)
    // A reply to HEAD has no body: evhttp would write one anyway, and the client would read it
    // as the start of its next response. The length is still the one a GET would get.
    if evhttp_request_get_command(raw) == EVHTTP_REQ_HEAD {
      // The caller's own Content-Length (a HEAD handler that knows the GET's length) wins.
      if evhttp_find_header(evhttp_request_get_output_headers(raw), "Content-Length") == nil {
        evhttp_add_header(evhttp_request_get_output_headers(raw), "Content-Length", String(body.count))
      }
      evhttp_send_reply(raw, Int32(status), nil, nil)
      return
    }
    if body.isEmpty {
      evhttp_send_reply(raw, Int32(status), nil, nil)
      return
    }
    let buffer = evbuffer_new()
    body.withUnsafeBytes { _ = evbuffer_add(buffer, $0.baseAddress, $0.count) }
    evhttp_send_reply(raw, Int32(status), nil, buffer)
    evbuffer_free(buffer)
  }

  /// Starts a streamed reply: the status line and headers go out now, the body in chunks.
  /// With a Content-Length header the body goes as is; without one, chunked (HTTP/1.1).
  public func startStream(status: Int, headers: [(name: String, value: String)]) {
    guard !isFinished else { return }
    setOutputHeaders(headers)
    evhttp_send_reply_start(raw, Int32(status), nil)
  }

  /// Queues `bytes` to the client. `onDrained` runs once everything queued so far was written.
  public func send(_ bytes: UnsafeRawBufferPointer, onDrained: (() -> Void)? = nil) {
    guard !isFinished, bytes.count > 0 else { return }
    let buffer = evbuffer_new()
    _ = evbuffer_add(buffer, bytes.baseAddress, bytes.count)
    drained = onDrained
    if onDrained != nil {
      // Context: unretained self; the owner keeps this request alive while a reply streams.
      evhttp_send_reply_chunk_with_cb(raw, buffer, drainTrampoline, Unmanaged.passUnretained(self).toOpaque())
    } else {
      evhttp_send_reply_chunk(raw, buffer)
    }
    evbuffer_free(buffer)
  }

  /// Bytes queued to this client and not yet written to its socket.
  public var pendingOutput: Int {
    guard let evcon = evhttp_request_get_connection(raw),
      let bev = evhttp_connection_get_bufferevent(evcon)
    else { return 0 }
    return evbuffer_get_length(bufferevent_get_output(bev))
  }

  /// Completes a streamed reply.
  public func endStream() {
    guard !isFinished else { return }
    isFinished = true
    drained = nil
    evhttp_send_reply_end(raw)
  }

  /// Cuts the client connection without completing the reply: the app must not take a
  /// truncated body for a whole one.
  public func abort() {
    guard !isFinished else { return }
    isFinished = true
    drained = nil
    if let evcon = evhttp_request_get_connection(raw) {
      evhttp_request_own(raw)
      evhttp_connection_free(evcon)
      evhttp_request_free(raw)
    } else {
      // Already detached from its connection: ending the reply frees it.
      evhttp_send_reply_end(raw)
    }
  }

  fileprivate func didDrain() {
    let callback = drained
    drained = nil
    callback?()
  }
}

private func drainTrampoline(_ evcon: OpaquePointer?, _ ctx: UnsafeMutableRawPointer?) {
  guard let ctx else { return }
  Unmanaged<ServerRequest>.fromOpaque(ctx).takeUnretainedValue().didDrain()
}

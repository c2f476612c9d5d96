import CEvent
import CShims
import Glibc

/// An evhttp server on one `EventLoop`: the admin listener and the sandbox API use it (the
/// proxy's per-worker listener is `ClientConnections`, on plain sockets).
public final class HTTPServer {
  public struct Settings: Sendable {
    /// Idle/read/write timeout of a client connection, in seconds.
    public var timeoutSeconds: Int32 = 60
    public var maxHeadersSize: Int = 96 * 1024
    public var maxBodySize: Int = 10 * 1024 * 1024
    public init() {}
  }

  let http: OpaquePointer
  let loop: EventLoop
  private let handler: (ServerRequest) -> Void
  private var bound: [OpaquePointer] = []
  private var tlsContext: TLSServerContext?

  public init(loop: EventLoop, settings: Settings = Settings(), handler: @escaping (ServerRequest) -> Void) throws(EventError) {
    guard let http = evhttp_new(loop.base) else { throw EventError("evhttp_new failed") }
    self.http = http
    self.loop = loop
    self.handler = handler
    evhttp_set_timeout(http, settings.timeoutSeconds)
    evhttp_set_max_headers_size(http, settings.maxHeadersSize)
    evhttp_set_max_body_size(http, settings.maxBodySize)
    // No text/html label on bodies we did not label ourselves.
    evhttp_set_default_content_type(http, nil)
    let methods =
      EVHTTP_REQ_GET.rawValue | EVHTTP_REQ_POST.rawValue | EVHTTP_REQ_HEAD.rawValue
      | EVHTTP_REQ_PUT.rawValue | EVHTTP_REQ_DELETE.rawValue | EVHTTP_REQ_PATCH.rawValue
      | EVHTTP_REQ_OPTIONS.rawValue
    evhttp_set_allowed_methods(http, UInt16(methods))
    // Context: unretained self; evhttp is freed in deinit, before self is gone.
    evhttp_set_gencb(http, requestTrampoline, Unmanaged.passUnretained(self).toOpaque())
  }

  deinit { evhttp_free(http) }

  /// Serves TLS on every socket of this server (sandbox API).
  public func useTLS(_ context: TLSServerContext) {
    tlsContext = context
    ap_evhttp_use_tls(http, context.ctx)
  }

  /// Serves requests arriving on an already listening socket (see `ListeningSocket`).
  /// `pauseOnExhaustion`: out of descriptors, accepting pauses for a moment instead of
  /// spinning; only for a socket bound until the loop stops (`stopAccepting` is not called).
  public func accept(socket fd: Int32, pauseOnExhaustion: Bool = false) throws(EventError) {
    // Accepted connections inherit TCP_NODELAY from the listening socket. Without it a reply
    // written in two parts (the sandbox's TLS head and body records) waited for the peer's
    // delayed acknowledgement: 40 ms a request through `authproxy dev`. (A Unix socket refuses
    // the option; nothing to do there.)
    _ = ap_tcp_nodelay(fd)
    guard let handle = evhttp_accept_socket_with_handle(http, fd) else {
      throw EventError("evhttp_accept_socket failed")
    }
    if pauseOnExhaustion { ap_evhttp_pause_on_exhaustion(handle) }
    bound.append(handle)
  }

  /// Stops accepting new connections; connections already open go on.
  public func stopAccepting() {
    for handle in bound { evhttp_del_accept_socket(http, handle) }
    bound.removeAll()
  }

  fileprivate func handle(_ raw: OpaquePointer) {
    handler(ServerRequest(raw: raw))
  }
}

private func requestTrampoline(_ raw: OpaquePointer?, _ ctx: UnsafeMutableRawPointer?) {
  guard let raw, let ctx else { return }
  Unmanaged<HTTPServer>.fromOpaque(ctx).takeUnretainedValue().handle(raw)
}

/// Identity of one client connection of an `HTTPServer` (valid until it closes).
public struct ConnectionID: Hashable {
  let evcon: OpaquePointer

  /// The client's IP address, as text, and its TCP port.
  var peer: (address: String, port: Int) {
    var address: UnsafeMutablePointer<CChar>?
    var port: UInt16 = 0
    evhttp_connection_get_peer(evcon, &address, &port)
    return (address.map { String(cString: $0) } ?? "", Int(port))
  }
}

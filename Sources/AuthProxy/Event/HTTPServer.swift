import CEvent
import CShims
import Glibc

/// An evhttp server on one `EventLoop`: the proxy's per-worker listener, the admin listener
/// and the sandbox API all use it.
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

  /// Routes every received byte through `inspector` before evhttp parses it (one per thread).
  func useInspector(_ inspector: ConnectionInspector) {
    ap_evhttp_use_inspector(http, inspectTrampoline, Unmanaged.passUnretained(inspector).toOpaque())
  }

  /// Serves requests arriving on an already listening socket (see `ListeningSocket`).
  public func accept(socket fd: Int32) throws(EventError) {
    guard let handle = evhttp_accept_socket_with_handle(http, fd) else {
      throw EventError("evhttp_accept_socket failed")
    }
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

/// Sees the raw bytes of incoming connections before evhttp does (see `ap_evhttp_use_inspector`),
/// and hears when each connection it saw closes. Subclassed by the proxy's framing check.
class ConnectionInspector {
  enum Verdict {
    case pass
    /// Answer these bytes (a whole HTTP response; may be empty) and close the connection.
    case reject([UInt8])
  }

  private var known: Set<ConnectionID> = []

  /// The bytes arrived on `connection`, in order.
  func inspect(connection: ConnectionID, bytes: UnsafeRawBufferPointer) -> Verdict { .pass }
  /// The connection is gone (closed by either side, timed out, or rejected).
  func closed(connection: ConnectionID) {}

  /// Answers `response` (a whole HTTP response; may be empty) and closes the connection, from
  /// outside the inspection callback (e.g. a timer).
  func close(_ connection: ConnectionID, response: [UInt8]) {
    guard known.contains(connection), let bev = evhttp_connection_get_bufferevent(connection.evcon) else { return }
    response.withUnsafeBufferPointer { buffer in
      buffer.withMemoryRebound(to: CChar.self) { chars in ap_reject_connection(bev, chars.baseAddress, chars.count) }
    }
  }

  /// Bytes queued to clients and not yet written, over every connection seen.
  var pendingOutput: Int {
    known.reduce(0) { sum, id in
      guard let bev = evhttp_connection_get_bufferevent(id.evcon) else { return sum }
      return sum + evbuffer_get_length(bufferevent_get_output(bev))
    }
  }

  /// The client's IP address, as text.
  func peerAddress(of connection: ConnectionID) -> String { connection.peer.address }

  fileprivate func received(evcon: OpaquePointer, bev: OpaquePointer, bytes: UnsafeRawBufferPointer) -> Bool {
    let id = ConnectionID(evcon: evcon)
    if known.insert(id).inserted {
      // Replies go out in pieces (head, then body chunks): without TCP_NODELAY, Nagle's
      // algorithm meets the client's delayed ACK and a response can stall for ~40 ms.
      var one: Int32 = 1
      setsockopt(bufferevent_getfd(bev), Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
      // Context: unretained self; the inspector lives as long as the server it inspects.
      evhttp_connection_set_closecb(evcon, connectionClosedTrampoline, Unmanaged.passUnretained(self).toOpaque())
    }
    switch inspect(connection: id, bytes: bytes) {
    case .pass:
      return true
    case .reject(let response):
      response.withUnsafeBufferPointer { buffer in
        buffer.withMemoryRebound(to: CChar.self) { chars in ap_reject_connection(bev, chars.baseAddress, chars.count) }
      }
      return false
    }
  }

  fileprivate func connectionClosed(_ evcon: OpaquePointer) {
    guard known.remove(ConnectionID(evcon: evcon)) != nil else { return }
    closed(connection: ConnectionID(evcon: evcon))
  }
}

private func inspectTrampoline(
  _ ctx: UnsafeMutableRawPointer?, _ evcon: OpaquePointer?, _ bev: OpaquePointer?,
  _ bytes: UnsafePointer<UInt8>?, _ len: Int
) -> Int32 {
  guard let ctx, let evcon, let bev, let bytes else { return 0 }
  let inspector = Unmanaged<ConnectionInspector>.fromOpaque(ctx).takeUnretainedValue()
  return inspector.received(evcon: evcon, bev: bev, bytes: UnsafeRawBufferPointer(start: bytes, count: len)) ? 0 : 1
}

private func connectionClosedTrampoline(_ evcon: OpaquePointer?, _ ctx: UnsafeMutableRawPointer?) {
  guard let evcon, let ctx else { return }
  Unmanaged<ConnectionInspector>.fromOpaque(ctx).takeUnretainedValue().connectionClosed(evcon)
}

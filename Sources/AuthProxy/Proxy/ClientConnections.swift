/// The worker's view of its client connections: each one's strict framing check (before evhttp
/// parses a byte), and who to tell when it closes.
final class ClientConnections: ConnectionInspector {
  final class Connection {
    var framer: RequestFramer
    /// The exchange in flight on this connection, told when the client goes away.
    var onClose: (() -> Void)?
    /// When the request head now arriving started (monotonic), nil between heads.
    var headStartedAt: Double?
    init(limits: RequestLimits) { framer = RequestFramer(limits: limits) }
  }

  private var connections: [ConnectionID: Connection] = [:]
  private let limits: RequestLimits
  /// Told of every request refused by the framing check: the error, its request id, the client.
  var onReject: ((ProxyError, String, String) -> Void)?

  init(limits: RequestLimits) { self.limits = limits }

  var count: Int { connections.count }

  func connection(_ id: ConnectionID?) -> Connection? { id.flatMap { connections[$0] } }

  override func inspect(connection id: ConnectionID, bytes: UnsafeRawBufferPointer) -> Verdict {
    let state: Connection
    if let known = connections[id] {
      state = known
    } else {
      state = Connection(limits: limits)
      connections[id] = state
    }
    let rejection = state.framer.consume(bytes)
    if state.framer.isReadingHead {
      if state.headStartedAt == nil { state.headStartedAt = monotonicSeconds() }
    } else {
      state.headStartedAt = nil
    }
    guard let rejection else { return .pass }
    let requestID = rejection.requestID ?? RequestID.generate()
    let error = ProxyError(status: rejection.status, code: rejection.code, message: rejection.message)
    onReject?(error, requestID, peerAddress(of: id))
    // With a reply still being written on this connection, only close it: our bytes would interleave.
    return .reject(state.onClose == nil ? error.rawResponse(requestID: requestID) : [])
  }

  /// Closes, with a 408, every connection whose request head has taken longer than `timeout`
  /// (slowloris: evhttp's own timeout restarts with every byte).
  func expireSlowHeads(timeout: Double) {
    let now = monotonicSeconds()
    for (id, state) in connections {
      guard let started = state.headStartedAt, now - started > timeout else { continue }
      state.headStartedAt = nil
      let requestID = RequestID.generate()
      let error = ProxyError(status: 408, code: "request_timeout", message: "the request head did not arrive within \(Int(timeout))s")
      onReject?(error, requestID, peerAddress(of: id))
      close(id, response: state.onClose == nil ? error.rawResponse(requestID: requestID) : [])
    }
  }

  override func closed(connection id: ConnectionID) {
    guard let state = connections.removeValue(forKey: id) else { return }
    let callback = state.onClose
    state.onClose = nil
    callback?()
  }
}

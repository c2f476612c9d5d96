/// A request the listener answered itself, before the worker saw it.
struct Refusal {
  var error: ProxyError
  var requestID: String
  var client: String
  /// Empty when the request line was not read whole or was refused itself.
  var method: String
  var target: String
}

/// The worker's listener: its client connections, each with its strict framing check, cut into
/// requests for the worker one at a time (pipelined requests wait their turn), with the
/// timeouts of SPEC §4 (`--header-timeout` for heads, `--timeout` for bodies, idle keep-alive
/// and stalled writes).
final class ClientConnections {
  private var open: [ObjectIdentifier: ClientConnection] = [:]
  private var acceptor: Acceptor?
  let limits: RequestLimits
  let endOfPass: EndOfPass
  /// What the timeouts read.
  let clock: any MonotonicClock
  /// Called with each complete request.
  var onRequest: ((ClientRequest) -> Void)?
  /// Called when the client of a request whose reply is not complete went away (closed, or
  /// stopped reading its reply).
  var onClientGone: ((ClientRequest) -> Void)?
  /// Told of every request refused by the framing check or a timeout.
  var onReject: ((Refusal) -> Void)?

  /// Most connections open at once (`--max-connections`, this worker's share); at the limit
  /// the acceptor pauses until one closes.
  let maxConnections: Int
  /// Told each time accepting pauses (the limit, or out of descriptors).
  var onPause: ((Acceptor.Pause) -> Void)? {
    didSet { acceptor?.onPause = onPause }
  }

  init(
    loop: EventLoop, limits: RequestLimits, listenSocket: Int32, maxConnections: Int = .max,
    clock: any MonotonicClock = SystemMonotonicClock()
  ) throws(EventError) {
    self.limits = limits
    self.clock = clock
    self.maxConnections = max(1, maxConnections)
    endOfPass = EndOfPass(loop: loop)
    acceptor = try Acceptor(loop: loop, socket: listenSocket, clock: clock) { [unowned self] socket in
      let connection = ClientConnection(socket: socket, server: self)
      self.open[ObjectIdentifier(connection)] = connection
      self.acceptor?.limitReached = self.open.count >= self.maxConnections
    }
  }

  /// Offered each accepted connection first: true when it went to another worker
  /// (`ConnectionBalance`).
  var handOff: ((Int32, (address: String, port: Int), Bool) -> Bool)? {
    didSet { acceptor?.handOff = handOff }
  }
  /// Told each time a connection closes.
  var onConnectionClosed: (() -> Void)?

  /// Takes on a connection another worker accepted; false once this one stopped accepting
  /// (drain), and the caller closes it.
  func adopt(_ fd: Int32, peer: (address: String, port: Int), unix: Bool) -> Bool {
    guard let acceptor else { return false }
    acceptor.adopt(fd, peer: peer, unix: unix)
    return true
  }

  /// Client connections open now.
  var count: Int { open.count }

  /// Connections whose request head or body is arriving now (the header and body timeouts
  /// run for these).
  var arriving: Int { open.values.count { $0.isArriving } }

  /// Bytes queued to clients and not yet written, over every connection.
  var pendingOutput: Int { open.values.reduce(0) { $0 + $1.pendingOutput } }

  /// Draining: every reply from now on is its connection's last (`Connection: close`).
  private(set) var draining = false

  /// Stops accepting new connections (drain); open ones finish the request they carry, and
  /// idle keep-alive ones are closed now (a client would otherwise send on them as the
  /// process exits and get a broken pipe).
  func stopAccepting() {
    acceptor?.stop()
    acceptor = nil
    draining = true
    for connection in Array(open.values) where connection.isIdle { connection.closeIdle() }
  }

  func closed(_ connection: ClientConnection) {
    guard open.removeValue(forKey: ObjectIdentifier(connection)) != nil else { return }
    acceptor?.limitReached = open.count >= maxConnections
    onConnectionClosed?()
  }

  func rejected(_ refusal: Refusal) {
    onReject?(refusal)
  }

  /// Called every second: answers 408 to heads slower than `headerTimeout` (slowloris: a byte
  /// at a time would otherwise hold a connection forever) and to bodies slower than
  /// `bodyTimeout`; closes connections idle longer than `idleTimeout` and those whose client
  /// has not taken any output for `idleTimeout`.
  func sweep(headerTimeout: Double, bodyTimeout: Double, idleTimeout: Double) {
    let now = clock.seconds()
    for connection in Array(open.values) {
      connection.expire(now: now, headerTimeout: headerTimeout, bodyTimeout: bodyTimeout, idleTimeout: idleTimeout)
    }
  }
}

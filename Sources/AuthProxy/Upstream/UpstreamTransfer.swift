/// What an `UpstreamTransfer` tells the one who started it (one object per attempt, not a
/// closure per callback).
protocol UpstreamTransferDelegate: AnyObject {
  /// The final response's status and headers (1xx responses are skipped), and its one length
  /// (`ResponseParser.Event.head`).
  func transferHead(_ transfer: UpstreamTransfer, status: Int, headers: HTTPFields, contentLength: Int?)
  /// Body bytes, taken whole; return false to pause after them until `resume`.
  func transferData(_ transfer: UpstreamTransfer, _ bytes: UnsafeRawBufferPointer) -> Bool
  /// The attempt ended (once; not after `cancel`).
  func transferCompleted(_ transfer: UpstreamTransfer, _ result: UpstreamResult)
}

/// One HTTP/1.1 attempt on an `UpstreamPool`: the request goes out whole (head and body), the
/// response comes back to the delegate as it arrives (head, body bytes, completion: a whole
/// answer, or the `UpstreamError` that ended it).
public final class UpstreamTransfer: TLSClientSocketDelegate {
  /// The request head, ready for the wire, and its body (sent after it, not copied into it).
  let head: [UInt8]
  let body: [UInt8]
  /// A new connection only: for requests that must never be sent twice, or a retry after a
  /// pooled connection failed.
  public let freshConnection: Bool
  /// Otherwise, an idle connection is taken only if its last exchange ended at most this many
  /// seconds ago (`--reuse-window`, for requests that must never be sent twice: a connection
  /// that just answered is not about to be closed by the upstream's keep-alive timeout).
  public var reuseWithin = Double.infinity
  /// The response head must come within this long of the start, and then no gap in the body
  /// may last this long: else the attempt fails as timed out.
  let stallTimeout: Double
  /// How many times the request was sent (never more than once: no silent resends here).
  public private(set) var sends = 0

  /// Held strongly until the attempt ends (it holds the attempt too: the cycle ends then).
  var delegate: (any UpstreamTransferDelegate)?
  /// The body is read to its end but not handed on (an answer to be replaced by a replay).
  var discardsBody = false

  private var parser: ResponseParser
  private var socket: TLSClientSocket?
  private var pool: UpstreamPool?
  private var reused = false
  private var paused = false
  /// Bytes received while paused, or left over when a pause stopped the parser.
  private var held: [UInt8] = []
  /// What the stall check reads.
  private let clock: any MonotonicClock
  /// When the attempt was made: the wait for a connection (`UpstreamPool.maxConnections`) and
  /// for the answer's head together last at most `stallTimeout`.
  let started: Double
  /// The pool whose queue this attempt waits in for a connection (nil: not waiting). Weak: the
  /// queue holds the attempt, and a pool let go of with attempts still waiting must not leak.
  weak var queuedIn: UpstreamPool?
  private var headReceived = false
  private var lastActivity: Double
  private var finished = false
  /// Ended: completed, failed or cancelled.
  var isFinished: Bool { finished }
  /// Cancelled, but reading the rest of the answer to keep the connection (`cancel`).
  private var draining = false
  private var drainedBytes = 0
  /// Most body bytes read and thrown away to keep a connection whose client left.
  static let maxDrain = 256 * 1024

  /// `now`: the start, if the caller just read `clock` (else it is read here).
  public init(
    head: [UInt8], body: [UInt8], isHEAD: Bool, freshConnection: Bool, stallTimeout: Double,
    clock: any MonotonicClock = SystemMonotonicClock(), now: Double? = nil
  ) {
    self.clock = clock
    let now = now ?? clock.seconds()
    started = now
    lastActivity = now
    self.head = head
    self.body = body
    self.freshConnection = freshConnection
    self.stallTimeout = stallTimeout
    parser = ResponseParser(isHEAD: isHEAD)
  }

  func run(on socket: TLSClientSocket, pool: UpstreamPool, reused: Bool) {
    self.socket = socket
    self.pool = pool
    self.reused = reused
    socket.delegate = self
    // What is left of the wait for the head, after any wait for a connection.
    socket.armTimer(after: max(0.001, stallTimeout - (clock.seconds() - started)))
    if socket.state == .open { send() }
  }

  public func socketOpened(_ socket: TLSClientSocket) { send() }
  public func socket(_ socket: TLSClientSocket, received bytes: UnsafeRawBufferPointer) { received(bytes) }
  public func socket(_ socket: TLSClientSocket, closed failure: TLSSocketFailure?) { closed(failure) }
  public func socketTimerFired(_ socket: TLSClientSocket) { checkStall() }

  private func send() {
    guard let socket else { return }
    sends += 1
    socket.used = true
    lastActivity = clock.seconds()
    socket.send(head)
    socket.send(body)
  }

  private func checkStall() {
    let now = clock.seconds()
    guard headReceived else {
      // The whole wait for the head counts, however the upstream trickles it.
      if now - started >= stallTimeout { drop(.timedOut) } else { socket?.armTimer(after: stallTimeout - (now - started)) }
      return
    }
    // While paused the app is the slow one: the upstream is not stalling.
    if paused { lastActivity = now }
    let idleFor = now - lastActivity
    if idleFor >= stallTimeout {
      drop(.timedOut)
    } else {
      socket?.armTimer(after: stallTimeout - idleFor)
    }
  }

  private func received(_ bytes: UnsafeRawBufferPointer) {
    lastActivity = clock.seconds()
    if paused || !held.isEmpty {
      held.append(contentsOf: bytes)
      socket?.pauseReading()
      return
    }
    parse(bytes)
  }

  /// Feeds the parser; keeps what a pause left over.
  private func parse(_ bytes: UnsafeRawBufferPointer) {
    do throws(ResponseParseError) {
      var ended = false
      var reusable = false
      let used = try parser.consume(bytes) { event in
        switch event {
        case .head(let status, let headers, let contentLength):
          self.headReceived = true
          self.delegate?.transferHead(self, status: status, headers: headers, contentLength: contentLength)
          return !self.finished
        case .body(let slice):
          guard !self.finished else { return false }
          if self.deliver(slice) { return true }
          if !self.finished { self.paused = true }
          return false
        case .end(let canReuse):
          ended = true
          reusable = canReuse
          return false
        }
      }
      if finished { return }
      if ended {
        // Bytes past the end of the response: the upstream answered more than it was asked.
        complete(nil, reusable: reusable && used == bytes.count)
      } else if used < bytes.count {
        held.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[used...]))
        socket?.pauseReading()
      }
    } catch {
      drop(.invalidAnswer)
    }
  }

  /// Hands body bytes on; false to stop after them (paused, or a drain that went on too long).
  private func deliver(_ bytes: UnsafeRawBufferPointer) -> Bool {
    guard !discardsBody, let delegate else {
      if draining {
        drainedBytes += bytes.count
        if drainedBytes > UpstreamTransfer.maxDrain {
          drop(.abandoned)  // nobody hears it: the exchange is gone
          return false
        }
      }
      return true
    }
    return delegate.transferData(self, bytes)
  }

  /// Continues after the delegate refused bytes.
  public func resume() {
    guard paused, !finished else { return }
    paused = false
    lastActivity = clock.seconds()
    if !held.isEmpty {
      let pending = held
      held.removeAll()
      pending.withUnsafeBytes { parse($0) }
    }
    guard !finished, !paused, held.isEmpty else { return }
    if eofWhilePaused { endOfStream() } else { socket?.resumeReading() }
  }

  private func closed(_ failure: TLSSocketFailure?) {
    socket = nil
    guard !finished else { return }
    if let failure {
      // Broken in the middle of an answer: a receive failure whatever the socket saw.
      return complete(parser.hasStarted ? .receiveFailed : UpstreamTransfer.error(failure), reusable: false)
    }
    if !held.isEmpty || paused {
      // The upstream finished sending while we were paused: the rest is still to be delivered.
      eofWhilePaused = true
      return
    }
    endOfStream()
  }

  private var eofWhilePaused = false

  private func endOfStream() {
    var completed = false
    let whole = parser.finishAtEOF { event in
      if case .body(let slice) = event { return self.deliver(slice) }
      if case .end = event { completed = true }
      return true
    }
    if whole || completed {
      complete(nil, reusable: false)
    } else {
      // Closed before any answer byte, or in the middle of one.
      complete(parser.hasStarted ? .cutBody : .emptyReply, reusable: false)
    }
  }

  /// Ends the attempt with `error`, closing its connection.
  func fail(_ error: UpstreamError) { drop(error) }

  private func drop(_ error: UpstreamError) {
    guard !finished else { return }
    let socket = self.socket
    self.socket = nil
    socket?.discard()
    complete(error, reusable: false)
  }

  private static func error(_ failure: TLSSocketFailure) -> UpstreamError {
    switch failure {
    case .refused: .refused
    case .timedOut: .timedOut
    case .handshake: .handshakeFailed
    case .notTrusted: .notTrusted
    case .pinMismatch: .pinMismatch
    case .send: .sendFailed
    case .receive: .receiveFailed
    }
  }

  /// Stops the attempt without calling back (the app went away). A request sent whole whose
  /// answer is still to come is read to its end and thrown away, within `maxDrain` bytes and
  /// the stall timeout, so that its connection goes back to the pool: clients that give up
  /// together must not cost as many new TLS connections. Otherwise the connection closes.
  public func cancel() {
    guard !finished, !draining else { return }
    delegate = nil
    if let queue = queuedIn { queue.queuedAttemptCancelled(self) }
    if let socket, sends > 0, socket.state == .open, socket.pendingOutput == 0, !eofWhilePaused {
      draining = true
      discardsBody = true
      resume()
      return
    }
    finished = true
    socket?.discard()
    socket = nil
    pool?.attemptEnded()
    pool = nil
    delegate = nil
  }

  private func complete(_ error: UpstreamError?, reusable: Bool) {
    guard !finished else { return }
    finished = true
    if let socket {
      self.socket = nil
      socket.cancelTimer()
      if error == nil && reusable, let pool { pool.release(socket) } else { socket.discard() }
    }
    pool?.attemptEnded()
    pool = nil
    let delegate = self.delegate
    self.delegate = nil
    delegate?.transferCompleted(self, UpstreamResult(error: error, reusedConnection: reused))
  }
}

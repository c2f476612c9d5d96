/// Told when the output queued to a client fell to the low watermark (a paused upstream may go
/// on).
protocol OutputDrainObserver: AnyObject {
  func outputDrained()
}

/// One client connection of the proxy listener.
final class ClientConnection: EndOfPassTask {
  private let socket: ClientSocket
  private unowned let server: ClientConnections
  private var framer: RequestFramer
  /// Received bytes not yet cut into a request; the framer has seen the first `scanned`.
  private var input: [UInt8] = []
  private var scanned = 0
  /// The request being answered; the next one waits in `input`.
  private(set) var current: ClientRequest?
  private var queued: [UInt8] = []
  /// Work for the end of this loop pass: write `queued`, cut the next pipelined request.
  private var flushScheduled = false
  private var processScheduled = false
  private var endOfPassScheduled = false
  private var drainObserver: (any OutputDrainObserver)?
  private var closing = false
  private var inProcess = false
  /// The current request's head was checked for `Expect: 100-continue` (once per request).
  private var continueChecked = false
  private var headStartedAt: Double?
  private var bodyStartedAt: Double?
  private var lastActivity: Double
  /// Most bytes read ahead of the request being answered before reading stops.
  static let maxReadAhead = 64 * 1024

  init(socket: ClientSocket, server: ClientConnections) {
    self.socket = socket
    self.server = server
    lastActivity = server.clock.seconds()
    framer = RequestFramer(limits: server.limits)
    socket.drainedAt = Forwarder.lowWatermark
    socket.onBytes = { [unowned self] bytes in withExtendedLifetime(self) { self.received(bytes) } }
    socket.onClosed = { [unowned self] in withExtendedLifetime(self) { self.gone() } }
    socket.onDrained = { [unowned self] in
      let observer = self.drainObserver
      self.drainObserver = nil
      observer?.outputDrained()
    }
  }

  var peer: (address: String, port: Int) { socket.peer }
  /// A Unix-socket peer's uid; nil on TCP.
  var peerUID: UInt32? { socket.peerUID }

  /// The proxy is draining: the reply being written is this connection's last.
  var isDraining: Bool { server.draining }

  /// No request under way or arriving, nothing left to write.
  var isIdle: Bool { current == nil && input.isEmpty && pendingOutput == 0 }

  /// A request's head or body is arriving (its timeout runs).
  var isArriving: Bool { headStartedAt != nil || bodyStartedAt != nil }

  func closeIdle() {
    socket.close()
    server.closed(self)
  }

  var pendingOutput: Int { socket.pendingOutput + queued.count }

  private func received(_ bytes: UnsafeRawBufferPointer) {
    lastActivity = server.clock.seconds()
    input.append(contentsOf: bytes)
    if current == nil {
      process()
    } else if input.count > ClientConnection.maxReadAhead {
      socket.pauseReading()
    }
  }

  /// Cuts complete requests out of the input and hands them on, one at a time.
  private func process() {
    guard !inProcess else { return }
    inProcess = true
    defer { inProcess = false }
    while current == nil && !closing && !socket.isClosed && scanned < input.count {
      let completedBefore = framer.requestsCompleted
      let (consumed, rejection) = input.withUnsafeBytes { framer.consumeRequest(UnsafeRawBufferPointer(rebasing: $0[scanned...])) }
      scanned += consumed
      // The read that brought these bytes set `lastActivity` (the clock is read once per read).
      let now = lastActivity
      headStartedAt = framer.isReadingHead ? headStartedAt ?? now : nil
      bodyStartedAt = framer.isReadingBody ? bodyStartedAt ?? now : nil
      if let rejection {
        let requestID = rejection.requestID ?? RequestID.generate()
        refuse(ProxyError(status: rejection.status, code: rejection.code, message: rejection.message), requestID: requestID)
        return
      }
      guard framer.requestsCompleted != completedBefore else {
        // Not whole yet: everything was taken.
        if !framer.isReadingHead && !framer.isReadingBody {
          // Only empty lines before a request line (RFC 9112 §2.2): the framer counted them,
          // nothing needs them again (and an idle connection is one with no input).
          input.removeFirst(scanned)
          scanned = 0
          break
        }
        if framer.isReadingBody && !continueChecked {
          continueChecked = true
          if expectsContinue() { queue(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)) }
        }
        break
      }
      // A whole request is in input[0..<scanned].
      guard let head = RequestHead(input[0..<scanned]) else {
        refuse(.badRequest("the request could not be read"), requestID: RequestID.generate())
        return
      }
      input.removeFirst(scanned)
      // A large body's buffer is not kept for the rest of the connection's life.
      if input.isEmpty && input.capacity > ClientConnection.maxReadAhead { input = [] }
      scanned = 0
      continueChecked = false
      let request = ClientRequest(head, connection: self)
      current = request
      server.onRequest?(request)
    }
    if current == nil && !closing { socket.resumeReading() }
  }

  /// The head just completed asks for `100 Continue` before its body (HTTP/1.1 only).
  private func expectsContinue() -> Bool {
    guard let head = RequestHead(input[0..<scanned]), !head.isHTTP10 else { return false }
    return head.headers.indices.contains {
      head.headers.name(at: $0, is: FieldName.expect)
        && String(decoding: head.headers.value(at: $0), as: UTF8.self).equalsIgnoringASCIICase("100-continue")
    }
  }

  /// A point in the output: what was queued and not written yet, and whether the connection
  /// was to close after its reply.
  struct OutputMark {
    fileprivate var queued: Int
    fileprivate var flushes: Int
    fileprivate var closing: Bool
  }

  private var flushes = 0

  var outputMark: OutputMark { OutputMark(queued: queued.count, flushes: flushes, closing: closing) }

  /// Drops what was queued since `mark`, if none of it was written yet; false otherwise.
  func retract(to mark: OutputMark) -> Bool {
    guard mark.flushes == flushes, mark.queued <= queued.count, !socket.isClosed else { return false }
    queued.removeSubrange(mark.queued...)
    closing = mark.closing
    return true
  }

  /// Queues bytes for the socket; they are written once, at the end of the loop pass.
  func queue(_ bytes: [UInt8], drainObserver: (any OutputDrainObserver)? = nil) {
    bytes.withUnsafeBytes { queue($0, drainObserver: drainObserver) }
  }

  /// Queues a copy of `bytes` (body bytes straight from the upstream's receive buffer).
  func queue(_ bytes: UnsafeRawBufferPointer, drainObserver: (any OutputDrainObserver)? = nil) {
    guard !socket.isClosed else { return }
    if let drainObserver { self.drainObserver = drainObserver }
    queued.append(contentsOf: bytes)
    if !flushScheduled {
      flushScheduled = true
      scheduleEndOfPass()
    }
  }

  private func scheduleEndOfPass() {
    guard !endOfPassScheduled else { return }
    endOfPassScheduled = true
    server.endOfPass.schedule(self)
  }

  func runAtEndOfPass() {
    endOfPassScheduled = false
    if flushScheduled { flush() }
    if processScheduled {
      processScheduled = false
      process()
    }
  }

  private func flush() {
    flushScheduled = false
    guard !queued.isEmpty, !socket.isClosed else { return }
    flushes += 1
    // A reply still under way (its request is current): more body follows these bytes.
    queued.withUnsafeBytes { socket.write($0, more: current != nil) }
    queued.removeAll(keepingCapacity: queued.capacity <= 256 * 1024)
    // The socket took enough at once that it will not call back: whoever waits for the output
    // to drain (a paused upstream) hears it now.
    if socket.pendingOutput <= Forwarder.lowWatermark, let observer = drainObserver {
      drainObserver = nil
      observer.outputDrained()
    }
    if closing && current == nil { socket.closeAfterFlush() }
  }

  /// The reply being written is the connection's last.
  func closeAfterReply() { closing = true }

  /// `request`'s reply is complete: next request, or close.
  func finished(_ request: ClientRequest) {
    guard current === request else { return }
    current = nil
    drainObserver = nil
    lastActivity = server.clock.seconds()
    if closing {
      if !flushScheduled { socket.closeAfterFlush() }
      return
    }
    if input.isEmpty {
      socket.resumeReading()
    } else {
      // A pipelined request: after this pass, not from inside the reply's callbacks.
      processScheduled = true
      scheduleEndOfPass()
    }
  }

  /// Cuts the connection now.
  func abort() {
    current?.detach()
    current = nil
    socket.close()
    server.closed(self)
  }

  /// A JSON error for a request that never reached the worker, then close.
  private func refuse(_ error: ProxyError, requestID: String) {
    // The current request starts the input; its method and target are named once its line
    // has been accepted (a 413, a bad header, a timeout after the line).
    let line = framer.requestLineAccepted ? RequestHead.methodAndTarget(input[...]) : nil
    server.rejected(
      Refusal(error: error, requestID: requestID, client: socket.peer.address, method: line?.method ?? "", target: line?.target ?? ""))
    closing = true
    headStartedAt = nil
    bodyStartedAt = nil
    // With a reply still being written, only close: our bytes would interleave.
    if current == nil { queue(error.rawResponse(requestID: requestID)) }
    if !flushScheduled { socket.closeAfterFlush() }
  }

  /// The client closed the connection (or it failed).
  private func gone() {
    let request = current
    current = nil
    request?.detach()
    server.closed(self)
    if let request { server.onClientGone?(request) }
  }

  func expire(now: Double, headerTimeout: Double, bodyTimeout: Double, idleTimeout: Double) {
    if socket.isClosed {
      // Closed after its last reply was written (a refusal, `Connection: close`): the socket
      // says nothing then, so it is let go here (it no longer counts to --max-connections).
      server.closed(self)
    } else if let started = headStartedAt, now - started > headerTimeout {
      refuse(
        ProxyError(status: 408, code: "request_timeout", message: "the request head did not arrive within \(Int(headerTimeout))s"),
        requestID: RequestID.generate())
    } else if let started = bodyStartedAt, now - started > bodyTimeout {
      refuse(
        ProxyError(status: 408, code: "request_timeout", message: "the request body did not arrive within \(Int(bodyTimeout))s"),
        requestID: RequestID.generate())
    } else if current == nil && input.isEmpty && now - lastActivity > idleTimeout && socket.pendingOutput == 0 {
      socket.close()
      server.closed(self)
    } else if socket.pendingOutput > 0 && now - socket.lastWriteProgress > idleTimeout {
      // The client stopped reading its reply.
      let request = current
      request?.detach()
      current = nil
      socket.close()
      server.closed(self)
      if let request { server.onClientGone?(request) }
    }
  }
}

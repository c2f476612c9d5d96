import CEvent
import COpenSSL
import CShims
import Glibc

/// Why a `TLSClientSocket` closed.
public enum TLSSocketFailure: Sendable, Equatable {
  case refused
  case timedOut
  case handshake
  case notTrusted
  case pinMismatch
  case send
  case receive
}

/// The receive buffer a worker's upstream sockets share (their reads run one at a time on the
/// worker's loop, and each hands its bytes on before the next read).
public final class ReadScratch {
  let buffer: UnsafeMutableRawBufferPointer
  public init(size: Int = 64 * 1024) { buffer = .allocate(byteCount: size, alignment: 16) }
  deinit { buffer.deallocate() }
}

/// What a `TLSClientSocket` tells its user (an upstream attempt). One object for the life of
/// the attempt instead of a closure per callback: an attempt per request must not allocate them.
public protocol TLSClientSocketDelegate: AnyObject {
  /// The handshake completed and the peer checked out.
  func socketOpened(_ socket: TLSClientSocket)
  /// Decrypted bytes; the callee copies what it keeps.
  func socket(_ socket: TLSClientSocket, received bytes: UnsafeRawBufferPointer)
  /// The connection is gone: nil for a clean end (EOF or close_notify), else why.
  func socket(_ socket: TLSClientSocket, closed failure: TLSSocketFailure?)
  /// The user's timer (`armTimer`) ran out.
  func socketTimerFired(_ socket: TLSClientSocket)
}

/// One non-blocking TLS connection, driven by an `EventLoop`. Its read event stays registered
/// for the life of the connection (an idle pooled connection learns at once that the peer
/// closed it), writes go straight to the socket and only arm a write event when it is full:
/// one read and one write system call per small exchange, no epoll changes.
public final class TLSClientSocket: PolledSocket {
  public enum State { case connecting, handshaking, open, closed }
  public private(set) var state = State.connecting
  /// Set once the connection carried a request: the upstream may close such a connection at any time.
  public var used = false

  /// The attempt using the connection: held strongly until it sets nil (it ends) or the
  /// connection closes. Without one (idle in a pool), an open connection that receives
  /// anything closes: nothing may come unasked.
  public var delegate: (any TLSClientSocketDelegate)?

  private let loop: EventLoop
  private let context: TLSClientContext
  private let scratch: ReadScratch
  private let host: String
  private var addresses: ArraySlice<SocketAddress>
  private var fd: Int32 = -1
  private var ssl: OpaquePointer?
  private var readPaused = false
  /// Buffers waiting for the socket, in order (a request head and its body stay two buffers:
  /// no copy of a large body); `written` bytes of the first have gone.
  private var output: [[UInt8]] = []
  private var written = 0
  private var connectTimer: Timer?
  /// The delegate's timer, made once per connection and re-armed by each attempt.
  private var userTimer: Timer?

  /// Starts connecting (address after address, until one takes) and the handshake; both
  /// together are bounded by `timeout`.
  public init(
    loop: EventLoop, context: TLSClientContext, scratch: ReadScratch, host: String, addresses: [SocketAddress], timeout: Double
  ) {
    self.loop = loop
    self.context = context
    self.scratch = scratch
    self.host = host
    self.addresses = addresses[...]
    super.init()
    connectTimer = Timer(loop: loop) { [unowned self] in self.fail(.timedOut) }
    connectTimer?.schedule(after: timeout)
    // Report failures from the loop, never from inside init: the caller has no callbacks set yet.
    loop.soon { [weak self] in self?.connectNext() }
  }

  deinit { release() }

  /// Arms the delegate's timer (`socketTimerFired`), replacing any earlier deadline.
  public func armTimer(after seconds: Double) {
    if userTimer == nil {
      userTimer = Timer(loop: loop) { [unowned self] in withExtendedLifetime(self) { self.delegate?.socketTimerFired(self) } }
    }
    userTimer?.schedule(after: seconds)
  }

  public func cancelTimer() { userTimer?.cancel() }

  private func connectNext() {
    guard state == .connecting else { return }
    releaseSocket()
    guard let address = addresses.popFirst() else {
      fail(.refused)
      return
    }
    fd = address.startConnect()
    guard fd >= 0 else {
      // No socket, or refused at once: the next address (none left: refused).
      loop.soon { [weak self] in self?.connectNext() }
      return
    }
    // Both events are freed in releaseSocket() before self goes.
    makeEvents(on: loop, fd: fd)
    if let writeEvent { event_add(writeEvent, nil) }
  }

  /// The TCP connect finished (the socket turned writable).
  private func connected() {
    var error: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
    guard error == 0 else {
      connectNext()
      return
    }
    guard let ssl = ap_tls_client_new(context.ctx, fd, host, 1) else {
      fail(.handshake)
      return
    }
    self.ssl = ssl
    state = .handshaking
    if let readEvent { event_add(readEvent, nil) }
    handshake()
  }

  private func handshake() {
    guard let ssl else { return }
    switch ap_tls_result(ssl, SSL_connect(ssl)) {
    case Int32(AP_TLS_OK):
      guard ap_tls_peer_verified(ssl) != 0 else { return fail(.notTrusted) }
      if !context.pins.isEmpty {
        var digest = [UInt8](repeating: 0, count: 32)
        guard ap_tls_peer_key_sha256(ssl, &digest) == 1, context.pins.contains(digest) else { return fail(.pinMismatch) }
      }
      state = .open
      connectTimer?.cancel()
      connectTimer = nil
      delegate?.socketOpened(self)
      if !output.isEmpty { flush() }
    case Int32(AP_TLS_WANT_READ): break
    case Int32(AP_TLS_WANT_WRITE): if let writeEvent { event_add(writeEvent, nil) }
    default:
      fail(SSL_get_verify_result(ssl) == X509_V_OK ? .handshake : .notTrusted)
    }
  }

  /// Queues bytes and writes what the socket takes now.
  public func send(_ bytes: [UInt8]) {
    guard state != .closed, !bytes.isEmpty else { return }
    output.append(bytes)
    if state == .open { flush() }
  }

  /// Bytes queued and not yet taken by the socket.
  public var pendingOutput: Int { output.reduce(0) { $0 + $1.count } - written }

  /// The TLS suite agreed with the peer; nil before the handshake.
  var cipherSuite: String? {
    guard let ssl, let cipher = SSL_get_current_cipher(ssl), let name = SSL_CIPHER_get_name(cipher) else { return nil }
    return String(cString: name)
  }

  private func flush() {
    guard let ssl else { return }
    while let first = output.first {
      while written < first.count {
        let rc = first.withUnsafeBytes { raw in
          SSL_write(ssl, raw.baseAddress! + written, Int32(min(raw.count - written, Int(Int32.max))))
        }
        switch ap_tls_result(ssl, rc) {
        case Int32(AP_TLS_OK): written += Int(rc)
        case Int32(AP_TLS_WANT_WRITE):
          if let writeEvent { event_add(writeEvent, nil) }
          return
        case Int32(AP_TLS_WANT_READ): return  // renegotiation: the read event carries on
        default: return fail(.send)
        }
      }
      output.removeFirst()
      written = 0
    }
  }

  /// Frees OpenSSL's record buffers while the connection is idle (it allocates them again on
  /// the next read or write); a no-op with data pending.
  public func releaseBuffers() {
    guard let ssl, state == .open else { return }
    _ = SSL_free_buffers(ssl)
  }

  /// Stops delivering bytes until `resumeReading` (the reader is full).
  public func pauseReading() {
    guard !readPaused, state == .open else { return }
    readPaused = true
    if let readEvent { event_del(readEvent) }
  }

  public func resumeReading() {
    guard readPaused, state == .open else { return }
    readPaused = false
    if let readEvent { event_add(readEvent, nil) }
    // OpenSSL may hold records it read ahead: the socket will not say so.
    loop.soon { [weak self] in self?.readable() }
  }

  override func readable() {
    switch state {
    case .connecting, .closed: return
    case .handshaking: return handshake()
    case .open: break
    }
    guard let ssl, !readPaused else { return }
    while state == .open && !readPaused {
      let rc = SSL_read(ssl, scratch.buffer.baseAddress, Int32(scratch.buffer.count))
      switch ap_tls_result(ssl, rc) {
      case Int32(AP_TLS_OK):
        guard let delegate else { return close(.receive) }
        delegate.socket(self, received: UnsafeRawBufferPointer(rebasing: scratch.buffer[0..<Int(rc)]))
        // The callback may have closed the connection, which frees `ssl`: look again first.
        guard state == .open, self.ssl == ssl else { return }
        // Level-triggered: bytes still in the socket raise the event again.
        if Int(rc) < scratch.buffer.count && SSL_has_pending(ssl) == 0 { return }
      case Int32(AP_TLS_WANT_READ): return
      case Int32(AP_TLS_WANT_WRITE):
        if let writeEvent { event_add(writeEvent, nil) }
        return
      case Int32(AP_TLS_CLOSED): return close(nil)
      default: return fail(.receive)
      }
    }
  }

  override func writable() {
    switch state {
    case .connecting: connected()
    case .handshaking: handshake()
    case .open: flush()
    case .closed: break
    }
  }

  private func fail(_ failure: TLSSocketFailure) { close(failure) }

  /// Closes the connection; the delegate hears it once, with `failure`, and is let go.
  public func close(_ failure: TLSSocketFailure? = nil) {
    guard state != .closed else { return }
    state = .closed
    release()
    let delegate = self.delegate
    self.delegate = nil
    delegate?.socket(self, closed: failure)
  }

  /// Closes without calling back (the owner is done with it).
  public func discard() {
    delegate = nil
    close(nil)
  }

  private func release() {
    connectTimer?.cancel()
    connectTimer = nil
    userTimer?.cancel()
    userTimer = nil
    if let ssl, state == .closed {
      // Best effort close_notify: the socket is non-blocking, a full buffer just skips it.
      _ = SSL_shutdown(ssl)
      ERR_clear_error()
    }
    releaseSocket()
  }

  private func releaseSocket() {
    freeEvents()
    if let ssl { SSL_free(ssl) }
    ssl = nil
    if fd >= 0 { Glibc.close(fd) }
    fd = -1
  }
}

import CEvent
import Glibc

/// Accepts connections on the worker's descriptor of the shared listening socket with libevent's
/// listener, and hands each new one over as a `ClientSocket`.
///
/// It pauses instead of spinning: when the owner says the connection limit is reached
/// (`limitReached`), and for a moment when accept(2) fails for want of descriptors or memory
/// (EMFILE, ENFILE, ENOBUFS, ENOMEM), which would otherwise wake the loop again at once for the
/// same pending connection. Waiting clients stay in the kernel's backlog meanwhile.
public final class Acceptor {
  /// Why accepting paused.
  public enum Pause: Sendable {
    case connectionLimit
    /// accept(2) failed with this errno; accepting resumes after `seconds`.
    case outOfResources(errno: Int32, seconds: Double)
  }

  private var listener: OpaquePointer?
  private let loop: EventLoop
  private let onAccept: (ClientSocket) -> Void
  private let scratch = ReadScratch()
  private let clock: any MonotonicClock
  /// Told each time accepting pauses.
  public var onPause: ((Pause) -> Void)?
  private var enabled = true
  private var atLimit = false
  private var backoffTimer: Timer?
  private var backingOff = false
  private var backoff = Acceptor.firstBackoff
  static let firstBackoff = 0.05
  static let longestBackoff = 1.0

  public init(
    loop: EventLoop, socket fd: Int32, clock: any MonotonicClock = SystemMonotonicClock(),
    onAccept: @escaping (ClientSocket) -> Void
  ) throws(EventError) {
    self.loop = loop
    self.clock = clock
    self.onAccept = onAccept
    // Context: unretained self; the listener is freed in deinit/stop, before self goes.
    // Backlog -1: the socket already listens. The descriptor is this worker's own (a dup of the
    // one socket): freeing the listener closes it, and once every worker has (drain) the
    // kernel refuses new connections.
    guard
      let listener = evconnlistener_new(
        loop.base, acceptTrampoline, Unmanaged.passUnretained(self).toOpaque(), UInt32(LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_CLOSE_ON_FREE),
        -1, fd)
    else { throw EventError("evconnlistener_new failed") }
    self.listener = listener
    // Without an error callback libevent logs every failed accept(2) and tries again at once.
    evconnlistener_set_error_cb(listener, acceptErrorTrampoline)
    backoffTimer = Timer(loop: loop) { [unowned self] in
      self.backingOff = false
      self.update()
    }
  }

  deinit { stop() }

  /// Stops accepting (drain) and closes the listening socket.
  public func stop() {
    if let listener { evconnlistener_free(listener) }
    listener = nil
    backoffTimer?.cancel()
  }

  /// The owner's connection limit is reached (true) or no longer (false).
  public var limitReached: Bool {
    get { atLimit }
    set {
      guard newValue != atLimit else { return }
      atLimit = newValue
      update()
      if newValue { onPause?(.connectionLimit) }
    }
  }

  private func update() {
    guard let listener else { return }
    let wanted = !atLimit && !backingOff
    guard wanted != enabled else { return }
    enabled = wanted
    if wanted { evconnlistener_enable(listener) } else { evconnlistener_disable(listener) }
  }

  fileprivate func failed(_ code: Int32) {
    switch code {
    case EMFILE, ENFILE, ENOBUFS, ENOMEM:
      // Out of resources: the pending connection stays pending; look again in a moment,
      // a little later each time it happens again.
      let pause = backoff
      backoff = min(backoff * 2, Acceptor.longestBackoff)
      backingOff = true
      update()
      backoffTimer?.schedule(after: pause)
      onPause?(.outOfResources(errno: code, seconds: pause))
    default:
      // The client gave up first (ECONNABORTED) and the like: nothing to do.
      break
    }
  }

  fileprivate func accepted(_ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>?, _ length: Int32) {
    backoff = Acceptor.firstBackoff
    var one: Int32 = 1
    // Replies go out as soon as they are written; no waiting on Nagle's algorithm.
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    let socket = ClientSocket(loop: loop, fd: fd, peer: ClientSocket.describe(address), scratch: scratch, clock: clock)
    if let address, Int32(address.pointee.sa_family) == AF_UNIX { socket.identifyUnixPeer(fd) }
    onAccept(socket)
  }
}

private func acceptTrampoline(
  _ listener: OpaquePointer?, _ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>?, _ length: Int32, _ ctx: UnsafeMutableRawPointer?
) {
  guard let ctx else {
    close(fd)
    return
  }
  Unmanaged<Acceptor>.fromOpaque(ctx).takeUnretainedValue().accepted(fd, address, length)
}

/// `evconnlistener_set_error_cb`: accept(2) failed; errno says why. Context: the same
/// unretained `Acceptor` as the accept callback, freed with the listener.
private func acceptErrorTrampoline(_ listener: OpaquePointer?, _ ctx: UnsafeMutableRawPointer?) {
  let code = errno
  guard let ctx else { return }
  Unmanaged<Acceptor>.fromOpaque(ctx).takeUnretainedValue().failed(code)
}

/// Work an object wants done once the current loop pass has run its callbacks.
public protocol EndOfPassTask: AnyObject {
  func runAtEndOfPass()
}

/// Runs tasks once the callbacks of the current loop pass are done, without a system call:
/// a worker queues its clients' output during a pass and writes each connection once.
public final class EndOfPass {
  private var event: OpaquePointer?
  /// Held strongly until run (no closure per schedule: this runs for every reply).
  private var pending: [any EndOfPassTask] = []

  public init(loop: EventLoop) {
    // Context: unretained self; the event is freed in deinit.
    event = event_new(loop.base, -1, 0, endOfPassTrampoline, Unmanaged.passUnretained(self).toOpaque())
  }

  deinit {
    if let event {
      event_del(event)
      event_free(event)
    }
  }

  public func schedule(_ task: any EndOfPassTask) {
    pending.append(task)
    if pending.count == 1, let event { event_active(event, 0, 0) }
  }

  fileprivate func run() {
    var batch: [any EndOfPassTask] = []
    while !pending.isEmpty {
      swap(&batch, &pending)
      for task in batch { task.runAtEndOfPass() }
      batch.removeAll(keepingCapacity: true)
    }
  }
}

private func endOfPassTrampoline(_ fd: Int32, _ what: Int16, _ ctx: UnsafeMutableRawPointer?) {
  guard let ctx else { return }
  Unmanaged<EndOfPass>.fromOpaque(ctx).takeUnretainedValue().run()
}

/// A non-blocking socket whose libevent read and write events call `readable()` and
/// `writable()` (`ClientSocket`, `TLSClientSocket`). The events' context is the unretained
/// socket: a subclass frees its events before it goes.
public class PolledSocket {
  /// Persistent read interest (removed while reading is paused), and one-shot write interest
  /// armed when the socket is full.
  var readEvent: OpaquePointer?
  var writeEvent: OpaquePointer?

  func readable() {}
  func writable() {}

  func makeEvents(on loop: EventLoop, fd: Int32) {
    // Context: unretained self; freeEvents() runs before the subclass lets go of the socket.
    let me = Unmanaged.passUnretained(self).toOpaque()
    readEvent = event_new(loop.base, fd, Int16(EV_READ | EV_PERSIST), polledSocketReadTrampoline, me)
    writeEvent = event_new(loop.base, fd, Int16(EV_WRITE), polledSocketWriteTrampoline, me)
  }

  func freeEvents() {
    for event in [readEvent, writeEvent] {
      if let event {
        event_del(event)
        event_free(event)
      }
    }
    readEvent = nil
    writeEvent = nil
  }
}

func polledSocketReadTrampoline(_ fd: Int32, _ what: Int16, _ ctx: UnsafeMutableRawPointer?) {
  guard let ctx else { return }
  let socket = Unmanaged<PolledSocket>.fromOpaque(ctx).takeUnretainedValue()
  withExtendedLifetime(socket) { socket.readable() }
}

func polledSocketWriteTrampoline(_ fd: Int32, _ what: Int16, _ ctx: UnsafeMutableRawPointer?) {
  guard let ctx else { return }
  let socket = Unmanaged<PolledSocket>.fromOpaque(ctx).takeUnretainedValue()
  withExtendedLifetime(socket) { socket.writable() }
}

/// One accepted client connection: plain, non-blocking TCP. Its read event stays registered for
/// the life of the connection (unless reading is paused), and output is written straight to
/// the socket, arming a write event only when the socket is full: per request one read and one
/// write system call, no epoll changes.
public final class ClientSocket: PolledSocket {
  public private(set) var peer: (address: String, port: Int)
  /// A Unix-socket peer's uid (`SO_PEERCRED`); nil on TCP.
  public private(set) var peerUID: UInt32?
  /// Bytes received; the callee copies what it keeps.
  public var onBytes: ((UnsafeRawBufferPointer) -> Void)?
  /// The peer closed the connection or it failed.
  public var onClosed: (() -> Void)?
  /// The output queued earlier fell to `drainedAt` bytes or fewer (0: was fully written).
  public var onDrained: (() -> Void)?
  /// Where `onDrained` fires: a low watermark lets a paused producer go on before the socket
  /// runs dry, so a fast reader with a small receive window never waits on the refill.
  public var drainedAt = 0

  private let loop: EventLoop
  private var fd: Int32
  private var output: [UInt8] = []
  private var written = 0
  private var readPaused = false
  private var closeWhenFlushed = false
  public private(set) var isClosed = false
  /// When the socket last took output or output began to wait (monotonic, `clock`): a write
  /// stall check, meaningful while `pendingOutput > 0`.
  public private(set) var lastWriteProgress: Double
  private let clock: any MonotonicClock

  /// The worker's receive buffer, shared by its connections (one read at a time on the loop).
  private let scratch: ReadScratch

  init(
    loop: EventLoop, fd: Int32, peer: (address: String, port: Int), scratch: ReadScratch,
    clock: any MonotonicClock = SystemMonotonicClock()
  ) {
    self.loop = loop
    self.clock = clock
    lastWriteProgress = clock.seconds()
    self.scratch = scratch
    self.fd = fd
    self.peer = peer
    super.init()
    // Both events are freed in close(), and deinit closes.
    makeEvents(on: loop, fd: fd)
    if let readEvent { event_add(readEvent, nil) }
  }

  deinit { shut() }

  /// A Unix-socket peer is known by its uid: `unix:uid=1001` in the access log.
  fileprivate func identifyUnixPeer(_ fd: Int32) {
    peerUID = ListeningSocket.peerUID(fd)
    peer = (peerUID.map { "unix:uid=\($0)" } ?? "unix", 0)
  }

  static func describe(_ address: UnsafeMutablePointer<sockaddr>?) -> (address: String, port: Int) {
    guard let address else { return ("", 0) }
    var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
    switch Int32(address.pointee.sa_family) {
    case AF_INET:
      return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
        var addr = v4.pointee.sin_addr
        inet_ntop(AF_INET, &addr, &text, socklen_t(text.count))
        return (String(cBuffer: text), Int(UInt16(bigEndian: v4.pointee.sin_port)))
      }
    case AF_INET6:
      return address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
        var addr = v6.pointee.sin6_addr
        inet_ntop(AF_INET6, &addr, &text, socklen_t(text.count))
        return (String(cBuffer: text), Int(UInt16(bigEndian: v6.pointee.sin6_port)))
      }
    default:
      return ("", 0)
    }
  }

  /// Bytes queued and not yet taken by the socket.
  public var pendingOutput: Int { output.count - written }

  /// Writes what the socket takes now and keeps a copy of the rest for later.
  public func write(_ bytes: UnsafeRawBufferPointer) {
    guard !isClosed, !bytes.isEmpty else { return }
    var offset = 0
    if written == output.count {
      // Nothing waiting: straight from the caller's buffer, no copy.
      while offset < bytes.count {
        let n = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
        if n > 0 {
          offset += n
        } else if n < 0 && errno == EINTR {
          continue
        } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
          break
        } else {
          return fail()
        }
      }
      if offset == bytes.count {
        if closeWhenFlushed { shut() }
        return
      }
      output.removeAll(keepingCapacity: true)
      written = 0
      // Output starts to wait now: the stall check counts from here (a write taken whole
      // needs no clock read).
      lastWriteProgress = clock.seconds()
    }
    output.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset...]))
    flush()
  }

  private func flush() {
    while written < output.count {
      let n = output.withUnsafeBytes { raw in send(fd, raw.baseAddress! + written, raw.count - written, Int32(MSG_NOSIGNAL)) }
      if n > 0 {
        written += n
        lastWriteProgress = clock.seconds()
        continue
      }
      if n < 0 && errno == EINTR { continue }
      if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
        if let writeEvent { event_add(writeEvent, nil) }
        return
      }
      return fail()
    }
    output.removeAll(keepingCapacity: output.capacity <= 256 * 1024)
    written = 0
    if closeWhenFlushed { return shut() }
  }

  override func writable() {
    let before = pendingOutput
    flush()
    if before > drainedAt && pendingOutput <= drainedAt && !isClosed { onDrained?() }
  }

  /// Stops reading (backpressure on a client that sends ahead); the peer's close is then
  /// noticed when reading resumes or a write fails.
  public func pauseReading() {
    guard !readPaused, !isClosed else { return }
    readPaused = true
    if let readEvent { event_del(readEvent) }
  }

  public func resumeReading() {
    guard readPaused, !isClosed else { return }
    readPaused = false
    if let readEvent { event_add(readEvent, nil) }
  }

  override func readable() {
    let n = recv(fd, scratch.buffer.baseAddress, scratch.buffer.count, 0)
    if n > 0 {
      onBytes?(UnsafeRawBufferPointer(rebasing: scratch.buffer[0..<n]))
    } else if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      fail()
    }
  }

  private func fail() {
    guard !isClosed else { return }
    shut()
    let callback = onClosed
    onClosed = nil
    callback?()
  }

  /// Closes once the queued output is written (or at once when there is none).
  public func closeAfterFlush() {
    guard !isClosed else { return }
    closeWhenFlushed = true
    pauseReading()
    if pendingOutput == 0 { shut() }
  }

  /// Closes now, dropping queued output; no callback.
  public func close() {
    onClosed = nil
    shut()
  }

  private func shut() {
    guard !isClosed else { return }
    isClosed = true
    freeEvents()
    onBytes = nil
    onDrained = nil
    if fd >= 0 { Glibc.close(fd) }
    fd = -1
    output = []
    written = 0
  }
}

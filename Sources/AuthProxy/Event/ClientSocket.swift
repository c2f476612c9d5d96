import CEvent
import CShims
import Glibc

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
  /// TCP, not a Unix socket: MSG_MORE applies.
  private var isTCP = true
  /// The last write said the reply goes on (`write(_:more:)`).
  private var moreFollows = false
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
  func identifyUnixPeer(_ fd: Int32) {
    isTCP = false
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
  ///
  /// `more`: the reply goes on after these bytes (a body still arriving from the upstream). On
  /// TCP they are then sent with MSG_MORE: the kernel may hold a partial segment back until the
  /// next write or the peer's next acknowledgement fills it, so a large body reaches the reader
  /// in full segments, not in one small segment per upstream read (a client reading 1 MiB woke
  /// 16-20 times instead of 12, as it does behind nginx and HAProxy). Bytes are never held while
  /// nothing is in flight: no acknowledgement would come to send them.
  public func write(_ bytes: UnsafeRawBufferPointer, more: Bool = false) {
    guard !isClosed, !bytes.isEmpty else { return }
    moreFollows = more && isTCP
    let flags = sendFlags
    var offset = 0
    if written == output.count {
      // Nothing waiting: straight from the caller's buffer, no copy.
      while offset < bytes.count {
        let n = send(fd, bytes.baseAddress! + offset, bytes.count - offset, flags)
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
        if closeWhenFlushed { return shut() }
        if moreFollows { _ = ap_tcp_push_if_idle(fd) }
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
      let n = output.withUnsafeBytes { raw in send(fd, raw.baseAddress! + written, raw.count - written, sendFlags) }
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
    if moreFollows { _ = ap_tcp_push_if_idle(fd) }
  }

  private var sendFlags: Int32 { moreFollows ? Int32(MSG_NOSIGNAL | MSG_MORE) : Int32(MSG_NOSIGNAL) }

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

import CEvent
import CShims
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
    // Replies go out as soon as they are written; no waiting on Nagle's algorithm.
    _ = ap_tcp_nodelay(fd)
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

import CEvent
import CShims
import Glibc

/// Accepts connections on the worker's descriptor of the shared listening socket, and hands each
/// new one over as a `ClientSocket`.
///
/// At most `acceptsPerWake` connections per wake-up (HAProxy's `tune.maxaccept`), so that a
/// flood of new connections cannot hold up the loop's open ones; libevent's `evconnlistener`
/// accepts until the queue is empty, hence an event of our own. `handOff` may send a new
/// connection to another worker (`ConnectionBalance`), which `adopt`s it.
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

  private var event: OpaquePointer?
  private var fd: Int32
  private let loop: EventLoop
  private let acceptsPerWake: Int
  private let onAccept: (ClientSocket) -> Void
  private let scratch = ReadScratch()
  private let clock: any MonotonicClock
  /// Told each time accepting pauses.
  public var onPause: ((Pause) -> Void)?
  /// Offered each new connection first (descriptor, peer, whether a Unix socket): true when it
  /// went to another worker, which `adopt`s it.
  public var handOff: ((Int32, (address: String, port: Int), Bool) -> Bool)?
  private var enabled = true
  private var atLimit = false
  private var backoffTimer: Timer?
  private var backingOff = false
  private var backoff = Acceptor.firstBackoff
  static let firstBackoff = 0.05
  static let longestBackoff = 1.0

  /// `fd`: this worker's own descriptor of the listening socket (a dup of the one socket),
  /// already listening and non-blocking; `stop()` closes it, and once every worker has (drain)
  /// the kernel refuses new connections.
  public init(
    loop: EventLoop, socket fd: Int32, acceptsPerWake: Int = 64, clock: any MonotonicClock = SystemMonotonicClock(),
    onAccept: @escaping (ClientSocket) -> Void
  ) throws(EventError) {
    self.loop = loop
    self.fd = fd
    self.acceptsPerWake = max(1, acceptsPerWake)
    self.clock = clock
    self.onAccept = onAccept
    // Context: unretained self; the event is freed in stop (deinit too), before self goes.
    guard let event = event_new(loop.base, fd, Int16(EV_READ | EV_PERSIST), acceptTrampoline, Unmanaged.passUnretained(self).toOpaque())
    else { throw EventError("event_new failed for the listening socket") }
    self.event = event
    // Non-blocking whatever made it: every worker wakes for a new connection and all but one
    // find the queue empty, which must not block their loop.
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    event_add(event, nil)
    backoffTimer = Timer(loop: loop) { [unowned self] in
      self.backingOff = false
      self.update()
    }
  }

  deinit { stop() }

  /// Stops accepting (drain) and closes the listening socket.
  public func stop() {
    if let event {
      event_del(event)
      event_free(event)
    }
    event = nil
    if fd >= 0 { close(fd) }
    fd = -1
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
    guard let event else { return }
    let wanted = !atLimit && !backingOff
    guard wanted != enabled else { return }
    enabled = wanted
    if wanted { event_add(event, nil) } else { event_del(event) }
  }

  /// The listening socket is readable: take up to `acceptsPerWake` connections.
  fileprivate func ready() {
    var storage = sockaddr_storage()
    for _ in 0..<acceptsPerWake {
      guard enabled, fd >= 0 else { return }
      var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
      let client = withUnsafeMutablePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
          let client = ap_accept(fd, address, &length)
          if client >= 0 { accepted(client, address) }
          return client
        }
      }
      guard client >= 0 else {
        let code = errno
        if code != EAGAIN && code != EWOULDBLOCK && code != EINTR { failed(code) }
        return
      }
    }
  }

  private func failed(_ code: Int32) {
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

  private func accepted(_ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>) {
    backoff = Acceptor.firstBackoff
    // Replies go out as soon as they are written; no waiting on Nagle's algorithm.
    _ = ap_tcp_nodelay(fd)
    let peer = ClientSocket.describe(address)
    let unix = Int32(address.pointee.sa_family) == AF_UNIX
    if let handOff, handOff(fd, peer, unix) { return }
    adopt(fd, peer: peer, unix: unix)
  }

  /// Takes on a connection this acceptor, or another worker's, accepted.
  public func adopt(_ fd: Int32, peer: (address: String, port: Int), unix: Bool) {
    let socket = ClientSocket(loop: loop, fd: fd, peer: peer, scratch: scratch, clock: clock)
    if unix { socket.identifyUnixPeer(fd) }
    onAccept(socket)
  }
}

private func acceptTrampoline(_ fd: Int32, _ what: Int16, _ ctx: UnsafeMutableRawPointer?) {
  guard let ctx else { return }
  let acceptor = Unmanaged<Acceptor>.fromOpaque(ctx).takeUnretainedValue()
  withExtendedLifetime(acceptor) { acceptor.ready() }
}

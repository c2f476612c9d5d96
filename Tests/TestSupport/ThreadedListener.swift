import AuthProxy
import Foundation
import Glibc

/// A TCP listener on 127.0.0.1 on plain threads and blocking sockets: the skeleton of the test
/// servers that play a broken or scripted upstream byte by byte (`RecordingUpstream`,
/// `FaultServer`). `start(accepted)` begins accepting: for each connection, `accepted` runs on
/// the accepting thread (where it may read the server's mode of that moment) and returns the
/// work for that connection, which runs on a thread of its own. Every socket is tracked: `dropConnections` cuts them, `stop` cuts and
/// closes them after the threads are gone.
public final class ThreadedListener: @unchecked Sendable {
  // @unchecked: every mutable field is read and written under `lock`.
  public let port: Int
  private let listener: Int32
  private let lock = NSLock()
  private var running = true
  private var sockets: [Int32] = []
  private var threads = 0
  private var accepted = 0

  /// Binds a free port; nothing is accepted before `start`.
  public init() throws {
    let bound = try ListeningSocket.bind(host: "127.0.0.1", port: 0, reusePort: false)
    listener = bound.fd
    port = bound.port
  }

  public func start(_ accepted: @escaping @Sendable (Int32) -> (@Sendable () -> Void)) {
    spawn { [self] in acceptLoop(accepted) }
  }

  deinit { stop() }

  /// Connections accepted so far.
  public var acceptedCount: Int { lock.withLock { accepted } }

  /// Runs `body` on a thread of its own, waited for by `stop`.
  public func spawn(_ body: @escaping @Sendable () -> Void) {
    lock.withLock { threads += 1 }
    Thread { [self] in
      body()
      lock.withLock { threads -= 1 }
    }.start()
  }

  /// Tracks a socket the server opened itself (a relay's other end); false once stopping (the
  /// caller closes it then).
  public func track(_ fd: Int32) -> Bool {
    lock.withLock {
      guard running else { return false }
      sockets.append(fd)
      return true
    }
  }

  /// Ends one connection now: shut down, untracked, closed.
  public func close(_ fd: Int32) {
    shutdown(fd, Int32(SHUT_RDWR))
    lock.withLock {
      sockets.removeAll { $0 == fd }
      Glibc.close(fd)
    }
  }

  /// Cuts every connection open now (both directions, no answer).
  public func dropConnections() {
    lock.withLock { for fd in sockets { shutdown(fd, Int32(SHUT_RDWR)) } }
  }

  /// Stops listening, cuts every connection, waits for the threads, closes the sockets.
  public func stop() {
    let wasRunning = lock.withLock { () -> Bool in
      defer { running = false }
      return running
    }
    guard wasRunning else { return }
    dropConnections()
    _ = eventually(timeout: 5) { lock.withLock { threads == 0 } }
    lock.withLock {
      for fd in sockets { Glibc.close(fd) }
      sockets.removeAll()
    }
    Glibc.close(listener)
  }

  private func acceptLoop(_ accepted: @Sendable (Int32) -> (@Sendable () -> Void)) {
    while lock.withLock({ running }) {
      var pending = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
      guard poll(&pending, 1, 50) > 0 else { continue }
      let fd = accept(listener, nil, nil)
      guard fd >= 0 else { continue }
      let registered = lock.withLock { () -> Bool in
        guard running else { return false }
        self.accepted += 1
        sockets.append(fd)
        return true
      }
      guard registered else {
        Glibc.close(fd)
        return
      }
      spawn(accepted(fd))
    }
  }
}

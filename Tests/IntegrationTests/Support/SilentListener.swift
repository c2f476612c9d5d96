import AuthProxy
import Glibc

/// A TCP listener on loopback that never accepts: the kernel completes the handshake and
/// nothing ever answers (a hung database or Redis server).
final class SilentListener {
  let fd: Int32
  let port: Int

  init() throws {
    (fd, port) = try ListeningSocket.bind(host: "127.0.0.1", port: 0, reusePort: false)
  }

  /// A connection is waiting (not accepted) within `timeout` seconds.
  func hasPendingConnection(timeout: Double) -> Bool {
    var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&descriptor, 1, Int32(timeout * 1000)) == 1
  }

  deinit { close(fd) }
}

import CEvent
import Glibc

/// A non-blocking TCP connect on a loop, address after address until one takes; the open
/// connection is handed over as a `ClientSocket` (the same plain socket the listener uses).
/// No timer of its own: the owner bounds the whole attempt and calls `cancel()`.
final class TCPConnector: PolledSocket {
  private let loop: EventLoop
  private let scratch: ReadScratch
  private var addresses: ArraySlice<SocketAddress>
  private var fd: Int32 = -1
  private var done = false
  private var onResult: ((ClientSocket?) -> Void)?

  /// `onResult` runs once, on a later pass of the loop: the socket, or nil when no address took.
  init(loop: EventLoop, addresses: [SocketAddress], scratch: ReadScratch, onResult: @escaping (ClientSocket?) -> Void) {
    self.loop = loop
    self.scratch = scratch
    self.addresses = addresses[...]
    self.onResult = onResult
    super.init()
    loop.soon { [weak self] in self?.connectNext() }
  }

  deinit { cancel() }

  /// Gives up without calling back.
  func cancel() {
    done = true
    onResult = nil
    freeEvents()
    if fd >= 0 { Glibc.close(fd) }
    fd = -1
  }

  private func finish(_ socket: ClientSocket?) {
    let callback = onResult
    onResult = nil
    done = true
    callback?(socket)
  }

  private func connectNext() {
    guard !done else { return }
    freeEvents()
    if fd >= 0 { Glibc.close(fd) }
    fd = -1
    guard let address = addresses.popFirst() else { return finish(nil) }
    fd = address.startConnect()
    guard fd >= 0 else {
      loop.soon { [weak self] in self?.connectNext() }
      return
    }
    // Freed in connectNext()/cancel()/writable() before self goes.
    makeEvents(on: loop, fd: fd)
    if let writeEvent { event_add(writeEvent, nil) }
  }

  /// The connect finished, one way or the other.
  override func writable() {
    guard !done else { return }
    var error: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
    guard error == 0 else { return connectNext() }
    freeEvents()
    let connected = fd
    fd = -1
    finish(ClientSocket(loop: loop, fd: connected, peer: ("", 0), scratch: scratch))
  }
}

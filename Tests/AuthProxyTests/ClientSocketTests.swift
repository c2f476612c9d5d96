import Glibc
import Testing

@testable import AuthProxy

/// The backpressure signal of the listener's sockets, over a real socket pair whose buffers
/// hold far less than what is written.
@Suite struct ClientSocketTests {
  /// A paused upstream is let go at the low watermark, while the socket still has bytes to
  /// send: resuming only at empty would leave a fast reader waiting for the next read and
  /// decrypt of the upstream's bytes.
  @Test func drainedFiresAtTheLowWatermarkBeforeTheSocketRunsDry() throws {
    var fds: [Int32] = [0, 0]
    #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
    let (proxySide, appSide) = (fds[0], fds[1])
    defer { close(appSide) }
    // Small buffers: each write-readiness moves at most a few tens of KiB.
    var small: Int32 = 16 * 1024
    setsockopt(proxySide, SOL_SOCKET, SO_SNDBUF, &small, socklen_t(MemoryLayout<Int32>.size))
    setsockopt(appSide, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
    _ = fcntl(proxySide, F_SETFL, fcntl(proxySide, F_GETFL) | O_NONBLOCK)

    let total = 512 * 1024
    let watermark = 64 * 1024
    let loop = try EventLoop()
    let socket = ClientSocket(loop: loop, fd: proxySide, peer: ("test", 0), scratch: ReadScratch())
    socket.drainedAt = watermark
    var pendingWhenDrained: [Int] = []
    socket.onDrained = {
      pendingWhenDrained.append(socket.pendingOutput)
      if socket.drainedAt == 0 {
        loop.stop()
      } else {
        socket.drainedAt = 0  // then once more, when everything is written
      }
    }
    let payload = (0..<total).map { UInt8(truncatingIfNeeded: $0 % 251) }
    payload.withUnsafeBytes { socket.write($0) }
    #expect(socket.pendingOutput > watermark, "the socket pair took too much at once for the test to mean anything")
    // The app reads 8 KiB at a time on the loop's own thread, between the socket's writes, so
    // the queue shrinks in steps and the watermark is crossed with bytes still queued. (A reader
    // on a thread of its own could drain the pair as fast as one write burst filled it, on a
    // loaded machine: the queue then went from 500 KiB to nothing in one go.)
    _ = fcntl(appSide, F_SETFL, fcntl(appSide, F_GETFL) | O_NONBLOCK)
    var received: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 8 * 1024)
    func readSome() {
      let n = read(appSide, &chunk, chunk.count)
      if n > 0 { received.append(contentsOf: chunk[0..<n]) }
      if received.count < total { loop.after(0.001, readSome) }
    }
    loop.soon(readSome)
    loop.after(20) { loop.stop() }  // a failure ends the test instead of hanging it
    loop.run()
    socket.close()
    // What the kernel still holds once everything was written.
    while received.count < total {
      let n = read(appSide, &chunk, chunk.count)
      if n <= 0 { break }
      received.append(contentsOf: chunk[0..<n])
    }

    #expect(pendingWhenDrained.count == 2)
    let first = pendingWhenDrained.first ?? 0
    #expect(first > 0 && first <= watermark, "fired with \(first) bytes still queued")
    #expect(pendingWhenDrained.last == 0)
    #expect(received == payload, "every byte, in order")
  }

  /// Bytes of a reply that goes on are written with MSG_MORE (the kernel may hold a partial
  /// segment back for the next write), but never left held while nothing is in flight: no
  /// acknowledgement would come to send them, and TCP would sit on them for its probe timer
  /// (200 ms or more), a stall in every streamed reply whose upstream pauses. (Without the
  /// push, the kernel of Debian 12 still holds the 1000 bytes when this test looks.)
  @Test func bytesOfAReplyThatGoesOnAreNotHeldBackWhileNothingIsInFlight() throws {
    let (proxySide, appSide) = try Self.tcpPair()
    defer { close(appSide) }
    let loop = try EventLoop()
    let socket = ClientSocket(loop: loop, fd: proxySide, peer: ("test", 0), scratch: ReadScratch())
    defer { socket.close() }
    let part = [UInt8](repeating: 0x61, count: 1000)
    for round in 1...3 {
      part.withUnsafeBytes { socket.write($0, more: true) }
      #expect(Self.unsentBytes(proxySide) == 0, "round \(round): the kernel still holds bytes nobody will send")
      #expect(Self.readExactly(appSide, count: part.count) == part, "round \(round)")
    }
    // The reply's last bytes: no MSG_MORE at all.
    part.withUnsafeBytes { socket.write($0) }
    #expect(Self.unsentBytes(proxySide) == 0)
    #expect(Self.readExactly(appSide, count: part.count) == part)
  }

  /// A Unix socket has no segments to fill: `more` changes nothing there.
  @Test func moreIsIgnoredOnAUnixSocket() throws {
    var fds: [Int32] = [0, 0]
    #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
    defer { close(fds[1]) }
    let loop = try EventLoop()
    let socket = ClientSocket(loop: loop, fd: fds[0], peer: ("test", 0), scratch: ReadScratch())
    socket.identifyUnixPeer(fds[0])
    defer { socket.close() }
    let part = [UInt8](repeating: 0x63, count: 1000)
    part.withUnsafeBytes { socket.write($0, more: true) }
    #expect(Self.readExactly(fds[1], count: part.count) == part)
  }

  /// A connected loopback TCP pair, the proxy's side non-blocking with TCP_NODELAY as the
  /// acceptor sets it.
  static func tcpPair() throws -> (proxy: Int32, app: Int32) {
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(listener) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
    }
    try #require(bound && listen(listener, 1) == 0)
    let app = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(app, $0, length) == 0 }
    }
    try #require(connected)
    let proxy = accept(listener, nil, nil)
    try #require(proxy >= 0)
    var one: Int32 = 1
    setsockopt(proxy, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    _ = fcntl(proxy, F_SETFL, fcntl(proxy, F_GETFL) | O_NONBLOCK)
    return (proxy, app)
  }

  /// Bytes written to a TCP socket that the kernel has not sent yet (SIOCOUTQNSD).
  static func unsentBytes(_ fd: Int32) -> Int {
    var unsent: Int32 = -1
    let SIOCOUTQNSD: UInt = 0x894B  // linux/sockios.h
    return ioctl(fd, SIOCOUTQNSD, &unsent) == 0 ? Int(unsent) : -1
  }

  /// Reads exactly `count` bytes, waiting for them (5 s at most: then what arrived).
  static func readExactly(_ fd: Int32, count: Int) -> [UInt8] {
    var received: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: count)
    while received.count < count {
      var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      guard poll(&poller, 1, 5000) == 1 else { break }
      let n = Glibc.read(fd, &chunk, count - received.count)
      guard n > 0 else { break }
      received.append(contentsOf: chunk[0..<n])
    }
    return received
  }
}

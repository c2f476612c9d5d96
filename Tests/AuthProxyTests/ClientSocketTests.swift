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
}

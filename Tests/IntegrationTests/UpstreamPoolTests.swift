import SandboxAPI
import Testing

@testable import AuthProxy

/// The upstream connection pool, against the sandbox over real TLS.
@Suite struct UpstreamPoolTests {
  /// A response can end from bytes its transfer held while the app was slow, with the socket
  /// still paused. Pooled that way, the connection neither noticed the upstream closing it nor
  /// read the next request's answer: the next request on it hung until the stall timeout (seen
  /// as 1 MiB replies stalling in the bench whenever the app's socket buffer was small).
  @Test func aConnectionThatComesBackPausedReadsAgainInThePool() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let loop = try EventLoop()
    let tls = UpstreamTLS(caFile: sandbox.caPath)
    let pool = try UpstreamPool(loop: loop, tls: tls, host: "localhost", port: sandbox.port, connectTimeout: 5)
    let socket = TLSClientSocket(
      loop: loop, context: try TLSClientContext(tls), scratch: ReadScratch(), host: "localhost",
      addresses: SocketAddress.resolve(host: "localhost", port: sandbox.port), timeout: 5)
    let watcher = SocketWatcher(loop: loop)
    socket.delegate = watcher
    runLoop(loop, until: { socket.state == .open || socket.state == .closed })
    try #require(socket.state == .open, "connected and verified")

    socket.pauseReading()  // as a transfer that ended from held bytes leaves it
    pool.release(socket)
    sandbox.stop()  // closes every connection it has: the pooled one must see it

    runLoop(loop, until: { socket.state == .closed })
    #expect(socket.state == .closed, "the idle connection saw the upstream close it")
  }

  /// Runs `loop` until `condition` holds, checked every 10 ms, for at most 10 s.
  private func runLoop(_ loop: EventLoop, until condition: @escaping () -> Bool) {
    let deadline = monotonicSeconds() + 10
    func check() {
      if condition() || monotonicSeconds() > deadline { return loop.stop() }
      loop.after(0.01, check)
    }
    loop.soon(check)
    loop.run()
  }
}

/// Hears a socket's callbacks while a test holds it (the pool takes the delegate away).
private final class SocketWatcher: TLSClientSocketDelegate {
  let loop: EventLoop
  init(loop: EventLoop) { self.loop = loop }
  func socketOpened(_ socket: TLSClientSocket) {}
  func socket(_ socket: TLSClientSocket, received bytes: UnsafeRawBufferPointer) {}
  func socket(_ socket: TLSClientSocket, closed failure: TLSSocketFailure?) {}
  func socketTimerFired(_ socket: TLSClientSocket) {}
}

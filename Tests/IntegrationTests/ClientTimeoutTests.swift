import Foundation
import Testing

@testable import AuthProxy

/// The listener's timeouts (`--header-timeout`, the body timeout, the idle timeout), decided by
/// a manual clock: the test moves time and calls the sweep itself, so each boundary is checked
/// exactly (not before, and at once after), with real sockets and no waiting on time.
@Suite struct ClientTimeoutTests {
  /// A worker's listener on an ephemeral port, its loop driven by the test.
  private final class Listener {
    let loop: EventLoop
    let clock = ManualMonotonicClock()
    let connections: ClientConnections
    let port: Int
    var refusals: [Refusal] = []
    var requests: [ClientRequest] = []

    init() throws {
      loop = try EventLoop()
      let socket = try ListeningSocket.bind(host: "127.0.0.1", port: 0, reusePort: false)
      port = socket.port
      connections = try ClientConnections(
        loop: loop, limits: RequestLimits(maxBody: 1 << 20), listenSocket: socket.fd, clock: clock)
      connections.onReject = { [unowned self] in self.refusals.append($0) }
      connections.onRequest = { [unowned self] in self.requests.append($0) }
    }

    /// Runs the loop until `condition` holds; false if it did not within 20 s (a failure, not
    /// a measurement: every condition here is met after a few loop passes).
    @discardableResult
    func run(until condition: @escaping () -> Bool) -> Bool {
      let deadline = monotonicSeconds() + 20
      func check() {
        if condition() || monotonicSeconds() > deadline { return loop.stop() }
        loop.after(0.001, check)
      }
      loop.soon(check)
      loop.run()
      return condition()
    }

    func sweep() { connections.sweep(headerTimeout: 2, bodyTimeout: 2, idleTimeout: 2) }

    /// After a 408 refusal: the answer is written, the connection closed by the proxy and let
    /// go by the next sweep, and no request reached the worker. Returns what `client` read.
    @discardableResult
    func expectAnswered408AndClosed(
      _ client: RawConnection, sourceLocation: SourceLocation = #_sourceLocation
    ) -> (text: String, closedByPeer: Bool) {
      #expect(run { self.connections.pendingOutput == 0 }, "the answer was written", sourceLocation: sourceLocation)
      sweep()
      #expect(connections.count == 0, "closed after the answer, and let go by the next sweep", sourceLocation: sourceLocation)
      let answer = client.readUntilClosed()
      let text = String(decoding: answer.bytes, as: UTF8.self)
      #expect(text.hasPrefix("HTTP/1.1 408 "), "\(text)", sourceLocation: sourceLocation)
      #expect(requests.isEmpty, "nothing reached the worker", sourceLocation: sourceLocation)
      return (text, answer.closedByPeer)
    }
  }

  @Test func aHeadStillArrivingIsRefusedWith408OnlyOnceTheHeaderTimeoutHasPassed() throws {
    let listener = try Listener()
    let client = try RawConnection(port: listener.port, timeoutSeconds: 20)
    try client.send("GET /api/v1/echo HTTP/1.1\r\nHo")
    #expect(listener.run { listener.connections.arriving == 1 }, "the head's first bytes were read")
    listener.sweep()
    listener.clock.advance(by: 1)
    try client.send("st: x\r\nX-Slow: s")  // more bytes do not restart the head's clock
    #expect(listener.run { listener.connections.arriving == 1 })
    listener.clock.advance(by: 1)
    listener.sweep()
    #expect(listener.refusals.isEmpty, "exactly at --header-timeout: not yet")
    listener.clock.advance(by: 0.01)
    listener.sweep()
    let refusal = try #require(listener.refusals.first)
    #expect(listener.refusals.count == 1)
    #expect(refusal.error.status == 408)
    #expect(refusal.error.code == "request_timeout")
    #expect(refusal.error.message.contains("head"))
    #expect(refusal.method == "GET" && refusal.target == "/api/v1/echo", "the request line was read")
    let answer = listener.expectAnswered408AndClosed(client)
    #expect(answer.closedByPeer)
    #expect(answer.text.contains("request_timeout"))
  }

  @Test func aBodyStillArrivingIsRefusedWith408OnlyOnceTheBodyTimeoutHasPassed() throws {
    let listener = try Listener()
    let client = try RawConnection(port: listener.port, timeoutSeconds: 20)
    try client.send("POST /api/v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\nxx")
    #expect(listener.run { listener.connections.arriving == 1 })
    listener.clock.advance(by: 2)
    listener.sweep()
    #expect(listener.refusals.isEmpty, "exactly at the body timeout: not yet")
    listener.clock.advance(by: 0.5)
    listener.sweep()
    let refusal = try #require(listener.refusals.first)
    #expect(refusal.error.status == 408)
    #expect(refusal.error.message.contains("body"))
    listener.expectAnswered408AndClosed(client)
  }

  @Test func aHeadThatCompletesInTimeIsHandedOnAndNeverTimedOut() throws {
    let listener = try Listener()
    let client = try RawConnection(port: listener.port, timeoutSeconds: 20)
    try client.send("GET /api/v1/echo?pieces HTTP/1.1\r\n")
    #expect(listener.run { listener.connections.arriving == 1 })
    listener.clock.advance(by: 1.9)
    listener.sweep()
    try client.send("Host: x\r\n\r\n")
    #expect(listener.run { listener.requests.count == 1 }, "the request was handed on whole")
    listener.clock.advance(by: 10)
    listener.sweep()
    #expect(listener.refusals.isEmpty, "a request being answered is not timed out by the listener")
    #expect(listener.connections.count == 1)
  }

  @Test func aConnectionThatSendsNothingIsClosedOnlyAfterTheIdleTimeout() throws {
    let listener = try Listener()
    let client = try RawConnection(port: listener.port, timeoutSeconds: 20)
    #expect(listener.run { listener.connections.count == 1 }, "accepted")
    listener.clock.advance(by: 2)
    listener.sweep()
    #expect(listener.connections.count == 1, "exactly at the idle timeout: still open")
    listener.clock.advance(by: 0.01)
    listener.sweep()
    #expect(listener.connections.count == 0)
    #expect(listener.refusals.isEmpty, "closed quietly, no 408 for a request never begun")
    let answer = client.readUntilClosed()
    #expect(answer.closedByPeer)
    #expect(answer.bytes.isEmpty)
  }
}

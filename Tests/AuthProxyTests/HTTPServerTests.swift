import Glibc
import Testing

@testable import AuthProxy

/// The evhttp server of the admin listener and the sandbox API.
@Suite struct HTTPServerTests {
  /// Its connections send at once (TCP_NODELAY, inherited from the listening socket): the
  /// sandbox writes a reply as two TLS records, and without it the second waited for the
  /// client's delayed acknowledgement, 40 ms a request through `authproxy dev`.
  @Test func connectionsItAcceptsSendWithoutWaitingForAcknowledgements() throws {
    let loop = try EventLoop()
    let server = try HTTPServer(loop: loop) { request in request.respond(status: 200, headers: [], body: []) }
    let bound = try ListeningSocket.bind(host: "127.0.0.1", port: 0, reusePort: false)
    try server.accept(socket: bound.fd)
    defer { server.stopAccepting() }
    var value: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    #expect(getsockopt(bound.fd, Int32(IPPROTO_TCP), TCP_NODELAY, &value, &length) == 0)
    #expect(value == 1, "accepted connections inherit this")
  }
}

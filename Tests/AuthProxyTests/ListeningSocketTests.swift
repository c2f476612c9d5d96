import Glibc
import Testing

@testable import AuthProxy

/// The TCP listening sockets of the proxy, the admin listener and the sandbox API.
@Suite struct ListeningSocketTests {
  /// Connections accepted on it send at once (TCP_NODELAY, inherited from the listening
  /// socket): the sandbox writes a reply as two TLS records, and without it the second waited
  /// for the client's delayed acknowledgement, 40 ms a request through `authproxy dev`.
  @Test func connectionsAcceptedOnItSendWithoutWaitingForAcknowledgements() throws {
    let (proxySide, appSide) = try ClientSocketTests.tcpPair()
    defer {
      close(proxySide)
      close(appSide)
    }
    var value: Int32 = 0
    var length = socklen_t(MemoryLayout<Int32>.size)
    #expect(getsockopt(proxySide, Int32(IPPROTO_TCP), TCP_NODELAY, &value, &length) == 0)
    #expect(value != 0, "an accepted connection has TCP_NODELAY")
  }
}

import Glibc
import Testing

@testable import AuthProxy

/// How the data path's client finds the upstream's addresses.
@Suite struct SocketAddressTests {
  private func family(_ address: SocketAddress) -> Int32 { address.family }

  @Test(arguments: ["localhost", "LOCALHOST", "api.localhost"])
  func localhostIsTheLoopbackAddressesIPv4First(host: String) {
    // Without the resolver (RFC 6761): a container may lack /etc/hosts, and a namespace with
    // only `lo` made getaddrinfo(AI_ADDRCONFIG) return nothing for it.
    let addresses = SocketAddress.resolve(host: host, port: 8443)
    #expect(addresses.map(family).filter { $0 == AF_INET }.count >= 1)
    #expect(addresses.first.map(family) == AF_INET)
  }

  @Test func numericAddressesNeedNoResolver() {
    #expect(SocketAddress.resolve(host: "127.0.0.1", port: 443).map(family) == [AF_INET])
    #expect(SocketAddress.resolve(host: "::1", port: 443).map(family) == [AF_INET6])
  }

  @Test func aNameThatDoesNotResolveGivesNoAddress() {
    #expect(SocketAddress.resolve(host: "no-such-host.invalid", port: 443).isEmpty)
  }
}

import Glibc

/// An address to connect to, as getaddrinfo gave it.
public struct SocketAddress: Sendable {
  let storage: [UInt8]
  let family: Int32

  /// The addresses of `host`:`port` (blocking getaddrinfo: `HostResolver` runs it off the loop).
  /// `localhost` and `*.localhost` are the loopback addresses without asking anyone (RFC 6761,
  /// as curl does): a container may have no /etc/hosts entry for it. No AI_ADDRCONFIG: in a
  /// network namespace with only `lo` it would hide the loopback addresses too.
  public static func resolve(host: String, port: Int) -> [SocketAddress] {
    let lower = host.lowercased()
    if lower == "localhost" || lower.hasSuffix(".localhost") {
      return resolve(host: "127.0.0.1", port: port) + resolve(host: "::1", port: port)
    }
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, String(port), &hints, &list) == 0 else { return [] }
    defer { freeaddrinfo(list) }
    var result: [SocketAddress] = []
    var entry = list
    while let info = entry?.pointee {
      if let addr = info.ai_addr {
        let bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(addr), count: Int(info.ai_addrlen))
        result.append(SocketAddress(storage: [UInt8](bytes), family: info.ai_family))
      }
      entry = info.ai_next
    }
    return result
  }
}

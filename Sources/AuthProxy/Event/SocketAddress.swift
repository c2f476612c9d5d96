import CEvent
import CShims
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

  /// A non-blocking TCP socket (TCP_NODELAY) with a connect to this address under way: the fd,
  /// or -1 when the socket could not be made or the connect failed at once (errno says why).
  func startConnect() -> Int32 {
    let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return -1 }
    _ = ap_tcp_nodelay(fd)
    let rc = storage.withUnsafeBytes { raw in
      Glibc.connect(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
    }
    guard rc == 0 || errno == EINPROGRESS else {
      Glibc.close(fd)
      return -1
    }
    return fd
  }
}

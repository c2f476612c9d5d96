import CShims
import Glibc

/// A bound, listening TCP socket, made before any loop serves it so that several workers can
/// share it (each on a dup of its descriptor) even when the port is chosen by the kernel (port
/// 0). `reusePort` lets other sockets bind the same port (SO_REUSEPORT).
public enum ListeningSocket {
  /// Binds `host:port` (IPv4 or IPv6 literal, or `localhost`) and listens. Returns the fd and
  /// the port actually bound.
  public static func bind(host: String, port: Int, reusePort: Bool) throws(EventError) -> (fd: Int32, port: Int) {
    let hostname = host == "localhost" ? "127.0.0.1" : host
    var storage = sockaddr_storage()
    var length: socklen_t
    let family: Int32
    if hostname.contains(":") {
      var addr = sockaddr_in6()
      addr.sin6_family = sa_family_t(AF_INET6)
      addr.sin6_port = in_port_t(UInt16(port).bigEndian)
      guard inet_pton(AF_INET6, hostname, &addr.sin6_addr) == 1 else {
        throw EventError("\(host) is not an IP address", code: EINVAL)
      }
      withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: addr, as: sockaddr_in6.self) }
      length = socklen_t(MemoryLayout<sockaddr_in6>.size)
      family = AF_INET6
    } else {
      var addr = sockaddr_in()
      addr.sin_family = sa_family_t(AF_INET)
      addr.sin_port = in_port_t(UInt16(port).bigEndian)
      guard inet_pton(AF_INET, hostname, &addr.sin_addr) == 1 else {
        throw EventError("\(host) is not an IP address", code: EINVAL)
      }
      withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: addr, as: sockaddr_in.self) }
      length = socklen_t(MemoryLayout<sockaddr_in>.size)
      family = AF_INET
    }
    let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw EventError("socket() failed: \(String(cString: strerror(errno)))") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) }
    let bound = withUnsafePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
    }
    guard bound == 0 else {
      let code = errno
      close(fd)
      throw EventError("cannot bind \(host):\(port): \(String(cString: strerror(code)))", code: code)
    }
    guard listen(fd, 1024) == 0 else {
      let code = errno
      close(fd)
      throw EventError("cannot listen on \(host):\(port): \(String(cString: strerror(code)))", code: code)
    }
    var actual = sockaddr_storage()
    var actualLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
    _ = withUnsafeMutablePointer(to: &actual) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &actualLength) }
    }
    let boundPort: Int =
      family == AF_INET6
      ? withUnsafeBytes(of: actual) { Int(UInt16(bigEndian: $0.load(as: sockaddr_in6.self).sin6_port)) }
      : withUnsafeBytes(of: actual) { Int(UInt16(bigEndian: $0.load(as: sockaddr_in.self).sin_port)) }
    return (fd, boundPort)
  }
}

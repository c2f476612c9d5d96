import CShims
import Glibc

/// A listening Unix-domain stream socket (`--listen unix:/path`): apps on the same host
/// connect to a file, and the proxy learns each peer's uid from the kernel (`SO_PEERCRED`).
extension ListeningSocket {
  /// Binds `path` with file mode `mode` and listens. A socket file left by a proxy that is
  /// gone is removed first; anything else at `path` (a regular file, a socket some process
  /// still answers on) is refused, never deleted.
  public static func bindUnix(path: String, mode: UInt32) throws(EventError) -> Int32 {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    guard bytes.count < capacity else { throw EventError("the socket path \(path) is longer than \(capacity - 1) bytes", code: EINVAL) }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      for (i, b) in bytes.enumerated() { raw[i] = b }
    }
    let length = socklen_t(MemoryLayout<sockaddr_un>.size)
    try removeStale(path: path, address: address, length: length)
    let fd = ap_unix_stream_socket(1)
    guard fd >= 0 else { throw EventError("socket() failed: \(String(cString: strerror(errno)))") }
    // Created owner-only, then opened to `mode`: no moment where it is wider than asked.
    let previous = umask(0o177)
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
    }
    let bindError = errno
    umask(previous)
    guard bound == 0 else {
      close(fd)
      throw EventError("cannot bind \(path): \(String(cString: strerror(bindError)))", code: bindError)
    }
    guard chmod(path, mode_t(mode)) == 0, listen(fd, 1024) == 0 else {
      let code = errno
      close(fd)
      unlink(path)
      throw EventError("cannot listen on \(path): \(String(cString: strerror(code)))", code: code)
    }
    return fd
  }

  /// Removes a socket file nobody answers on; throws EADDRINUSE for a live one and EEXIST for
  /// anything that is not a socket.
  private static func removeStale(path: String, address: sockaddr_un, length: socklen_t) throws(EventError) {
    var info = stat()
    guard lstat(path, &info) == 0 else { return }
    guard info.st_mode & S_IFMT == S_IFSOCK else {
      throw EventError("\(path) exists and is not a socket; remove it or choose another path", code: EEXIST)
    }
    let probe = ap_unix_stream_socket(0)
    guard probe >= 0 else { throw EventError("socket() failed: \(String(cString: strerror(errno)))") }
    defer { close(probe) }
    var target = address
    let connected = withUnsafePointer(to: &target) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, length) }
    }
    if connected == 0 { throw EventError("another process listens on \(path)", code: EADDRINUSE) }
    unlink(path)
  }

  /// The uid of the process at the other end of a connected Unix socket.
  static func peerUID(_ fd: Int32) -> UInt32? {
    var uid: UInt32 = 0
    return ap_peer_uid(fd, &uid) == 0 ? uid : nil
  }
}

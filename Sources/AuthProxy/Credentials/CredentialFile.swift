import Glibc

/// A file read for a credential source: its bytes and modification time, with the checks
/// SPEC §3 asks for. Opened once and checked on the open descriptor (fstat), so the file
/// checked is the file read. Symbolic links are followed: Kubernetes mounts secrets that way.
struct CredentialFile {
  var contents: [UInt8]
  /// Seconds since the epoch.
  var modifiedAt: Double

  /// Credentials are a few hundred bytes; anything much larger is the wrong file.
  static let maxSize = 64 * 1024

  /// Reads `path`. With `ownerOnly`, refuses a mode other than 0600 or 0400. Errors are
  /// `.invalid` and attributed to `source`.
  static func read(_ path: String, ownerOnly: Bool, source: String) throws(CredentialError) -> CredentialFile {
    func fail(_ reason: String) -> CredentialError { CredentialError(.invalid, source: source, reason) }
    // O_NONBLOCK: opening a FIFO must not hang start-up; it is refused below as not a file.
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
    guard fd >= 0 else {
      let code = errno
      switch code {
      case ENOENT: throw fail("\(path) does not exist")
      case EACCES: throw fail("cannot read \(path): permission denied for uid \(getuid())")
      default: throw fail("cannot open \(path): \(String(cString: strerror(code)))")
      }
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw fail("cannot stat \(path): \(String(cString: strerror(errno)))") }
    guard info.st_mode & S_IFMT == S_IFREG else { throw fail("\(path) is not a regular file") }
    let mode = info.st_mode & 0o7777
    if ownerOnly && mode != 0o600 && mode != 0o400 {
      throw fail(
        "\(path) has mode \(octal(mode)); a credentials file must be readable by its owner only (0600 or 0400): "
          + "run chmod 600 \(path)")
    }
    guard info.st_size <= maxSize else {
      throw fail("\(path) is \(info.st_size) bytes, more than a credentials file can be (\(maxSize))")
    }
    var contents: [UInt8] = []
    // One allocation up front, so no half-filled copy of the secret is left behind by growth.
    contents.reserveCapacity(maxSize + 1)
    var chunk = [UInt8](repeating: 0, count: 4096)
    defer { chunk.wipe() }
    while true {
      let count = Glibc.read(fd, &chunk, chunk.count)
      if count < 0 {
        if errno == EINTR { continue }
        let message = String(cString: strerror(errno))
        contents.wipe()
        throw fail("cannot read \(path): \(message)")
      }
      if count == 0 { break }
      guard contents.count + count <= maxSize else {
        contents.wipe()
        throw fail("\(path) is larger than a credentials file can be (\(maxSize) bytes)")
      }
      contents.append(contentsOf: chunk[0..<count])
    }
    let modifiedAt = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
    return CredentialFile(contents: contents, modifiedAt: modifiedAt)
  }

  /// `0644`: four octal digits, as chmod takes them.
  static func octal(_ mode: mode_t) -> String {
    let digits = String(mode, radix: 8)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
  }
}

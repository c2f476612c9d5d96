import Glibc

/// A file read for a credential source: its bytes and modification time, with the checks
/// SPEC §3 asks for. Opened once and checked on the open descriptor (fstat), so the file
/// checked is the file read. Symbolic links are followed: Kubernetes mounts secrets that way.
public struct CredentialFile {
  var contents: [UInt8]
  /// Seconds since the epoch.
  var modifiedAt: Double

  /// Credentials are a few hundred bytes; anything much larger is the wrong file.
  static let maxSize = 64 * 1024

  /// Reads `path`. With `ownerOnly`, refuses a file that fails `permissionProblem`. Errors
  /// are `.invalid` and attributed to `source`.
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
    if ownerOnly, let problem = permissionProblem(path: path, info: info) { throw fail(problem) }
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

  /// The rule for a file that holds a secret (PostgreSQL's for its key file): owner-only
  /// (0600 or 0400, owned by this process's user), or owned by root and readable by one of
  /// this process's groups (0640 or 0440: a Kubernetes Secret volume with `fsGroup` and
  /// `defaultMode: 0440`). Never readable by others, never writable by anyone but the owner.
  /// Nil when `path` passes; else what is wrong, the rule and the fix.
  static func permissionProblem(
    path: String, mode: mode_t, owner: uid_t, group: gid_t, processUser: uid_t, processGroups: Set<gid_t>
  ) -> String? {
    let mode = mode & 0o7777
    if owner == processUser && (mode == 0o600 || mode == 0o400) { return nil }
    if owner == 0 && processGroups.contains(group) && (mode == 0o640 || mode == 0o440) { return nil }
    let rule =
      "a file holding a secret must be readable by its owner only (0600 or 0400), or owned by root and readable by "
      + "the process's group only (0640 or 0440)"
    let fix: String
    if owner == processUser {
      fix = "run chmod 600 \(path)"
    } else if owner == 0 {
      fix =
        processGroups.contains(group)
        ? "run chmod 640 \(path)"
        : "run chgrp \(processGroups.min() ?? 0) \(path) && chmod 640 \(path) (in Kubernetes: fsGroup and defaultMode: 0440)"
    } else {
      fix = "run chown \(processUser) \(path) && chmod 600 \(path)"
    }
    return "\(path) has mode \(octal(mode)), owner uid \(owner), group gid \(group) (this process: uid \(processUser)); \(rule): \(fix)"
  }

  /// `permissionProblem` for an opened file, against this process's user and groups.
  static func permissionProblem(path: String, info: stat) -> String? {
    permissionProblem(
      path: path, mode: info.st_mode, owner: info.st_uid, group: info.st_gid, processUser: geteuid(), processGroups: processGroups())
  }

  /// The effective group and the supplementary groups (where `fsGroup` lands).
  static func processGroups() -> Set<gid_t> {
    var groups = Set([getegid()])
    let count = getgroups(0, nil)
    if count > 0 {
      var list = [gid_t](repeating: 0, count: Int(count))
      let got = getgroups(count, &list)
      if got > 0 { groups.formUnion(list[0..<Int(got)]) }
    }
    return groups
  }

  /// The permission rule for a file read by a library rather than here (`--client-key`): nil
  /// when it passes or cannot be checked (a missing file is reported by its reader).
  public static func permissionProblem(path: String) -> String? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return permissionProblem(path: path, info: info)
  }

  /// `0644`: four octal digits, as chmod takes them.
  static func octal(_ mode: mode_t) -> String {
    let digits = String(mode, radix: 8)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
  }
}

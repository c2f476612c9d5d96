import Glibc

/// What identifies a version of a file without reading it: device and inode (a Kubernetes
/// `..data` swap or a rename points the path at another file), size and mtime (a rewrite), and
/// mode, owner, group and ctime (a chmod or chown that makes a refused file acceptable: the
/// fix the refusal suggests must be noticed).
struct FileStamp: Equatable {
  let device: UInt64
  let inode: UInt64
  let size: Int64
  let mtimeNanos: Int64
  let ctimeNanos: Int64
  let mode: UInt32
  let owner: UInt32
  let group: UInt32

  /// Follows symbolic links: the stamp is the file's the path leads to now.
  init?(path: String) {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    device = UInt64(info.st_dev)
    inode = UInt64(info.st_ino)
    size = Int64(info.st_size)
    mtimeNanos = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
    ctimeNanos = Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec)
    mode = UInt32(info.st_mode)
    owner = UInt32(info.st_uid)
    group = UInt32(info.st_gid)
  }
}

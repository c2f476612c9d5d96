import Foundation
import Glibc

/// A fresh directory named `<name>-<8 random characters>` under this test process's own folder,
/// which is removed when the process exits: a test run leaves nothing in the temporary folder.
public func temporaryDirectory(_ name: String = "authproxy-test") -> String {
  let path = TestScratch.root + "/\(name)-\(UUID().uuidString.prefix(8))"
  try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

/// The per-process scratch folder `authproxy-tests.<pid>` in the system's temporary folder.
/// Made on first use; removed at exit. A run that crashed cannot remove its own, so the first use
/// in a later run removes every such folder whose process is gone.
enum TestScratch {
  static let prefix = "authproxy-tests."

  static let root: String = {
    let base = NSTemporaryDirectory()
    removeLeftovers(in: base)
    let root = base + (base.hasSuffix("/") ? "" : "/") + prefix + String(getpid())
    try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(atPath: TestScratch.root) }
    return root
  }()

  private static func removeLeftovers(in base: String) {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
    for name in names where name.hasPrefix(prefix) {
      guard let pid = pid_t(name.dropFirst(prefix.count)), pid != getpid() else { continue }
      if kill(pid, 0) != 0 && errno == ESRCH {
        try? FileManager.default.removeItem(atPath: base + "/" + name)
      }
    }
  }
}

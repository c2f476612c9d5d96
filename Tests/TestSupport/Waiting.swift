import Foundation
import Glibc

/// A fresh directory under the system's temporary folder, named `<name>-<8 random characters>`.
public func temporaryDirectory(_ name: String = "authproxy-test") -> String {
  let path = NSTemporaryDirectory() + "\(name)-\(UUID().uuidString.prefix(8))"
  try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

/// Polls `condition` until it holds or `timeout` passes: waits on a condition, never a fixed sleep.
public func eventually(timeout: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
  let deadline = Date().addingTimeInterval(timeout)
  while Date() < deadline {
    if try condition() { return true }
    usleep(20_000)
  }
  return try condition()
}

import Foundation
import Glibc

/// Polls `condition` until it holds or `timeout` passes: waits on a condition, never a fixed sleep.
public func eventually(timeout: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
  let deadline = Date().addingTimeInterval(timeout)
  while Date() < deadline {
    if try condition() { return true }
    usleep(20_000)
  }
  return try condition()
}

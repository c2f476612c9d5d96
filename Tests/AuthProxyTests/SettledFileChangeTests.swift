import Foundation
import Testing
import TestSupport

@testable import AuthProxy

/// The change detection shared by the credentials file and the apps file: a new version is
/// read only once it stayed the same for a whole poll.
@Suite struct SettledFileChangeTests {
  @Test func aChangeIsReportedOnceItHasSettledAndOnlyOnce() throws {
    let path = temporaryDirectory("authproxy-settle") + "/watched.json"
    try "one".write(toFile: path, atomically: true, encoding: .utf8)
    var watch = SettledFileChange(path: path)
    #expect(watch.poll(path: path) == .unchanged)
    try "two, longer".write(toFile: path, atomically: true, encoding: .utf8)
    #expect(watch.poll(path: path) == .settling(first: true))
    #expect(watch.poll(path: path) == .settled)
    #expect(watch.poll(path: path) == .unchanged, "reported once")
  }

  @Test func aFileStillBeingWrittenIsNotReadHalfWay() throws {
    let path = temporaryDirectory("authproxy-settle") + "/watched.json"
    try "v1".write(toFile: path, atomically: true, encoding: .utf8)
    var watch = SettledFileChange(path: path)
    try "v2 part".write(toFile: path, atomically: true, encoding: .utf8)
    #expect(watch.poll(path: path) == .settling(first: true))
    try "v2 part and the rest".write(toFile: path, atomically: true, encoding: .utf8)
    #expect(watch.poll(path: path) == .settling(first: false), "it changed again: wait another poll")
    #expect(watch.poll(path: path) == .settled)
  }

  @Test func aFileMissingForAMomentIsLookedAtAgain() throws {
    let path = temporaryDirectory("authproxy-settle") + "/watched.json"
    try "v1".write(toFile: path, atomically: true, encoding: .utf8)
    var watch = SettledFileChange(path: path)
    try FileManager.default.removeItem(atPath: path)
    #expect(watch.poll(path: path) == .unchanged)
    try "v2, back".write(toFile: path, atomically: true, encoding: .utf8)
    #expect(watch.poll(path: path) == .settling(first: true))
    #expect(watch.poll(path: path) == .settled)
  }
}

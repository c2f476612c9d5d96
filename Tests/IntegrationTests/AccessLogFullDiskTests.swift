import AuthProxy
import Foundation
import Synchronization
import Testing
import TestSupport

/// A small tmpfs of this test's own (root and mount(2) needed).
private enum SmallFilesystem {
  static func mount(at path: String, size: String) -> Bool {
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return Glibc.mount("tmpfs", path, "tmpfs", 0, "size=\(size),mode=0755") == 0
  }

  static func unmount(_ path: String) { _ = umount2(path, Int32(MNT_DETACH)) }

  /// Whether this process can mount one at all.
  static let possible: Bool = {
    let probe = temporaryDirectory("authproxy-tmpfs-probe")
    defer { try? FileManager.default.removeItem(atPath: probe) }
    guard mount(at: probe, size: "16k") else { return false }
    unmount(probe)
    return true
  }()

  /// Fills the filesystem of `path`'s directory with a file at `path`, then frees `leave` bytes.
  static func fill(_ path: String, leaving leave: Int) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    let block = [UInt8](repeating: 0x2E, count: 4096)
    var size = 0
    while true {
      let n = block.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
      if n <= 0 { break }
      size += n
    }
    return ftruncate(fd, off_t(max(0, size - leave))) == 0
  }
}

/// Issue 17, point 1: the access log is the audit trail. On a full disk its lines are written
/// whole or not at all, wait in a bounded buffer and are retried, and what must be dropped is
/// counted, said in the diagnostic log once, and raised as an `audit_log_failure` alert; the
/// proxy keeps serving.
@Suite(.serialized) struct AccessLogFullDiskTests {
  @Test(.enabled(if: SmallFilesystem.possible, "skipped: needs root to mount a small tmpfs (mount(2) failed)"))
  func aFullDiskLosesNoLineWithoutCountingItAndTearsNone() throws {
    let directory = temporaryDirectory("authproxy-full-disk")
    let volume = directory + "/volume"
    #expect(SmallFilesystem.mount(at: volume, size: "64k"))
    defer {
      SmallFilesystem.unmount(volume)
      try? FileManager.default.removeItem(atPath: directory)
    }
    let filler = volume + "/filler"
    // Room for a few dozen lines, then the disk is full.
    #expect(SmallFilesystem.fill(filler, leaving: 8192))
    let logPath = volume + "/access.log"
    let proxy = try ProxyHarness(workers: 2, flags: ["access-log": logPath, "access-log-buffer": "16KiB"])
    defer { proxy.stop() }
    #expect(eventually { (try? proxy.admin("/readyz").status) == 200 })

    // Load: 4 clients, 100 requests each, every one with an ID of its own.
    let perClient = 100
    let clients = 4
    let statuses = Mutex<[Int]>([])
    let sent = Mutex<Set<String>>([])
    let group = DispatchGroup()
    let port = proxy.port
    for client in 0..<clients {
      group.enter()
      Thread {
        defer { group.leave() }
        for n in 0..<perClient {
          let id = "full-disk-\(client)-\(n)"
          let status = (try? request(port: port, target: "/api/v1/products?limit=1", headers: [("X-Request-ID", id)]).status) ?? 0
          statuses.withLock { $0.append(status) }
          sent.withLock { _ = $0.insert(id) }
        }
      }.start()
    }
    group.wait()
    let total = clients * perClient
    #expect(statuses.withLock { $0.count } == total)
    let failed = statuses.withLock { $0.filter { $0 != 200 } }
    #expect(failed.isEmpty, "the proxy kept serving; not 200: \(failed)")

    func metric(_ line: String) -> Double? {
      guard let text = try? proxy.admin("/metrics").text else { return nil }
      for row in text.split(separator: "\n") where row.hasPrefix(line + " ") { return Double(row.split(separator: " ").last!) }
      return nil
    }
    // The disk filled up: counted by cause, lines dropped past the 16 KiB buffer.
    #expect(eventually { (metric(#"authproxy_access_log_write_errors_total{cause="no_space"}"#) ?? 0) >= 1 })
    #expect(eventually { (metric("authproxy_access_log_dropped_lines_total") ?? 0) >= 1 })
    #expect(try proxy.admin("/healthz").status == 200)
    // Said once (not once per line), and raised as an alert through the sinks.
    let said = proxy.logs.all.filter { $0.contains("access log: cannot write to") }
    #expect(said.count == 1, "\(said.count) diagnostic lines")
    #expect(said.first?.contains("No space left on device") == true)
    #expect(eventually { (metric(#"authproxy_alerts_total{rule="audit_log_failure"}"#) ?? 0) == 1 })
    #expect(proxy.logs.all.contains { $0.contains("audit_log_failure") && $0.contains("authproxy alert") })

    // Room again: the waiting lines are written; every request is in the log or counted.
    try FileManager.default.removeItem(atPath: filler)
    func written() -> [Substring] {
      let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
      return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { $0 }
    }
    // Every request the proxy finished (all of them, when every status above was 200).
    func finished() -> Int {
      guard let text = try? proxy.admin("/metrics").text else { return -1 }
      return text.split(separator: "\n").filter { $0.hasPrefix("authproxy_requests_total{") }.reduce(0) {
        $0 + Int(Double($1.split(separator: " ").last!) ?? 0)
      }
    }
    #expect(finished() >= total - failed.count)
    #expect(
      eventually(timeout: 20) {
        guard let dropped = metric("authproxy_access_log_dropped_lines_total") else { return false }
        return written().count + Int(dropped) == finished() && metric("authproxy_access_log_buffered_bytes") == 0
      },
      "lines in the log \(written().count) + dropped \(metric("authproxy_access_log_dropped_lines_total") ?? -1) == \(finished())")
    let lines = written()
    let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    #expect(text.isEmpty || text.hasSuffix("\n"), "the log ends with a whole line")
    // The disk filled in the middle of a line (a short write): that part was taken back.
    #expect(proxy.logs.all.contains { $0.contains("took back the") && $0.contains("line cut short") })
    var seen = Set<String>()
    for line in lines {
      let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
      #expect(object != nil, "a torn or broken line: \(line.prefix(80))")
      if let id = object?["request_id"] as? String { seen.insert(id) }
    }
    #expect(seen.count == lines.count, "no line twice")
    #expect(seen.isSubset(of: sent.withLock { $0 }))
    #expect(lines.count > 0 && lines.count < finished(), "some lines written, some dropped: \(lines.count) of \(finished())")
    #expect(eventually { proxy.logs.all.contains { $0.contains("is writable again") } })
  }
}

import Dispatch
import Glibc
import Logging
import Synchronization

/// Where access-log lines end up: a file opened for appending, or stdout. Workers hand it whole
/// buffers of whole lines; one writer thread of its own writes them, so a slow or full disk
/// never blocks a worker and lines never interleave. Reopened on SIGUSR1 for logrotate.
///
/// The access log is the security team's audit trail, so a line is written whole or not at
/// all: a write cut short (a full disk) is truncated back to the last whole line. Lines that
/// cannot be written wait in memory, up to `bufferBytes`, and are retried every second; past
/// that, new lines are dropped and counted. The diagnostic log says so at once, then at most
/// once a minute; `onFailure` (an `audit_log_failure` alert) hears of each episode.
public final class AccessLogSink: Sendable {
  /// What `/metrics` shows of the sink.
  public struct Stats: Sendable, Equatable {
    public var droppedLines = 0
    /// Failed writes by cause (`no_space`, `quota`, `io`, `too_large`, `closed`, `other`).
    public var writeErrors: [String: Int] = [:]
    /// Bytes of whole lines waiting to be written.
    public var bufferedBytes = 0
  }

  private struct State {
    var fd: Int32
    var queue: [[UInt8]] = []
    var queuedBytes = 0
    var reopen = false
    var stopping = false
    var stats = Stats()
    /// Writes are failing: the episode began at the first failure and ends at a success.
    var failing = false
    var lastReport = 0.0
    var droppedAtReport = 0
  }
  private let state: Mutex<State>
  private let path: String
  private let wake = DispatchSemaphore(value: 0)
  private let stopped = DispatchSemaphore(value: 0)
  private let bufferBytes: Int
  private let logger: Logger?
  private let clock: any WallClock
  private let failureHandler = Mutex<(@Sendable (String) -> Void)?>(nil)
  /// The default of `--access-log-buffer`.
  public static let defaultBufferBytes = 64 << 20
  /// A failing log is reported again at most this often.
  static let reportInterval = 60.0
  /// Waiting lines are retried this often while the log cannot be written.
  static let retryInterval = 1.0

  public init(
    path: String, bufferBytes: Int = AccessLogSink.defaultBufferBytes, logger: Logger? = nil, clock: any WallClock = SystemClock()
  ) throws(ConfigErrors) {
    self.path = path
    self.bufferBytes = bufferBytes
    self.logger = logger
    self.clock = clock
    state = Mutex(State(fd: try AccessLogSink.open(path)))
    let thread = LoopThread(name: "ap-access-log") { [self] in self.run() }
    thread.detach()
  }

  /// Told, with a secret-free reason, when writes start failing (once per episode).
  public func onFailure(_ handler: @escaping @Sendable (String) -> Void) { failureHandler.withLock { $0 = handler } }

  private static func open(_ path: String) throws(ConfigErrors) -> Int32 {
    if path == "-" { return 1 }
    let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
    guard fd >= 0 else {
      throw ConfigErrors(problems: ["--access-log: cannot open '\(path)' for appending (\(String(cString: strerror(errno))))"])
    }
    return fd
  }

  /// Queues whole lines for the writer thread; returns at once. Past the buffer, the lines are
  /// dropped and counted: the whole lines that fit wait, the later ones go. (A worker hands over
  /// up to 64 KiB at once: with a smaller `--access-log-buffer`, a batch dropped whole lost
  /// every line of a busy second while the disk was fine.)
  public func write(_ bytes: [UInt8]) {
    let queued = state.withLock { state -> Bool in
      let room = bufferBytes - state.queuedBytes
      if bytes.count <= room {
        state.queue.append(bytes)
        state.queuedBytes += bytes.count
        return true
      }
      let fit = room > 0 ? (bytes[..<room].lastIndex(of: 0x0A).map { $0 + 1 } ?? 0) : 0
      state.stats.droppedLines += AccessLogSink.lines(in: bytes[fit...])
      guard fit > 0 else { return false }
      state.queue.append(Array(bytes[..<fit]))
      state.queuedBytes += fit
      return true
    }
    if queued { wake.signal() }
  }

  /// Lines dropped because they could not be written.
  public var droppedLines: Int { state.withLock { $0.stats.droppedLines } }

  public var stats: Stats {
    state.withLock { state in
      var stats = state.stats
      stats.bufferedBytes = state.queuedBytes
      return stats
    }
  }

  /// Opens the file again (after logrotate moved it).
  public func reopen() {
    state.withLock { $0.reopen = true }
    wake.signal()
  }

  /// Writes what is queued, then stops the writer (at exit). What cannot be written then is
  /// dropped, counted and said.
  public func flushAndStop() {
    let first = state.withLock { state -> Bool in
      defer { state.stopping = true }
      return !state.stopping
    }
    guard first else { return }
    wake.signal()
    stopped.wait()
  }

  private func run() {
    var retrying = false
    while true {
      if retrying {
        _ = wake.wait(timeout: .now() + AccessLogSink.retryInterval)
      } else {
        wake.wait()
      }
      let (batch, fd, reopen, stopping) = state.withLock { state in
        let batch = state.queue
        state.queue.removeAll(keepingCapacity: true)
        state.queuedBytes = 0
        defer { state.reopen = false }
        return (batch.count == 1 ? batch[0] : Array(batch.joined()), state.fd, state.reopen, state.stopping)
      }
      if reopen, path != "-", let fresh = try? AccessLogSink.open(path) {
        state.withLock { state in
          close(state.fd)
          state.fd = fresh
        }
      }
      let unwritten = batch.isEmpty ? [] : writeWholeLines(fd, batch)
      retrying = !unwritten.isEmpty
      if retrying {
        state.withLock { state in
          // Back in front of what came meanwhile, in order. What came meanwhile was let in
          // against a buffer without these lines: the newest go until the buffer bound holds.
          state.queue.insert(unwritten, at: 0)
          state.queuedBytes += unwritten.count
          while state.queuedBytes > bufferBytes, state.queue.count > 1 {
            let newest = state.queue.removeLast()
            state.queuedBytes -= newest.count
            state.stats.droppedLines += AccessLogSink.lines(in: newest[...])
          }
        }
      } else if !batch.isEmpty {
        recovered()
      }
      if stopping {
        let left = state.withLock { state -> Int in
          let lines = state.queue.reduce(0) { $0 + AccessLogSink.lines(in: $1[...]) }
          state.stats.droppedLines += lines
          state.queue.removeAll()
          state.queuedBytes = 0
          if state.fd > 2 { close(state.fd) }
          return lines
        }
        if left > 0 {
          logger?.error(
            "access log: \(left) line\(left == 1 ? "" : "s") could not be written before exit and \(left == 1 ? "is" : "are") lost",
            metadata: ["rule": "audit_log_failure"])
        }
        stopped.signal()
        return
      }
    }
  }

  /// Writes `bytes` (whole lines); returns the whole lines that could not be written. A line
  /// cut short is truncated off the file, so that the log holds only whole lines.
  private func writeWholeLines(_ fd: Int32, _ bytes: [UInt8]) -> [UInt8] {
    var offset = 0
    var failure: Int32 = 0
    bytes.withUnsafeBytes { buffer in
      while offset < buffer.count {
        let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 {
          failure = n < 0 ? errno : EIO
          return
        }
        offset += n
      }
    }
    guard failure != 0 else { return [] }
    // The whole lines written stay; a torn last line is taken back off the file.
    let wholeEnd = bytes[..<offset].lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
    let torn = offset - wholeEnd
    if torn > 0 {
      let end = lseek(fd, 0, SEEK_END)
      if end < 0 || ftruncate(fd, end - off_t(torn)) != 0 {
        logger?.error("access log: a line cut short by the failed write could not be taken back off \(path)")
      } else {
        logger?.debug("access log: took back the \(torn) bytes of a line cut short; it waits whole")
      }
    }
    failed(cause: AccessLogSink.cause(failure), errno: failure, waiting: bytes.count - wholeEnd)
    return Array(bytes[wholeEnd...])
  }

  /// Counts the failure; says so at once, then at most once a minute.
  private func failed(cause: String, errno code: Int32, waiting: Int) {
    let now = clock.now()
    let report: (first: Bool, dropped: Int)? = state.withLock { state in
      state.stats.writeErrors[cause, default: 0] += 1
      if !state.failing {
        state.failing = true
        state.lastReport = now
        state.droppedAtReport = state.stats.droppedLines
        return (true, 0)
      }
      guard now - state.lastReport >= AccessLogSink.reportInterval else { return nil }
      state.lastReport = now
      defer { state.droppedAtReport = state.stats.droppedLines }
      return (false, state.stats.droppedLines - state.droppedAtReport)
    }
    guard let report else { return }
    let why = "cannot write to \(path): \(String(cString: strerror(code)))"
    if report.first {
      logger?.error(
        "access log: \(why); lines wait in memory (up to \(bufferBytes) bytes) and are retried every second, later ones are dropped and counted (authproxy_access_log_dropped_lines_total); requests are still served",
        metadata: ["rule": "audit_log_failure", "cause": "\(cause)"])
      let handler = failureHandler.withLock { $0 }
      handler?("access log \(why)")
    } else {
      logger?.error(
        "access log: still \(why); \(waiting) bytes waiting, \(report.dropped) lines dropped in the last minute",
        metadata: ["rule": "audit_log_failure", "cause": "\(cause)"])
    }
  }

  private func recovered() {
    let dropped: Int? = state.withLock { state in
      guard state.failing else { return nil }
      state.failing = false
      return state.stats.droppedLines
    }
    guard let dropped else { return }
    logger?.notice("access log: \(path) is writable again; the waiting lines are written (\(dropped) dropped in all)")
  }

  static func cause(_ code: Int32) -> String {
    switch code {
    case ENOSPC: "no_space"
    case EDQUOT: "quota"
    case EIO: "io"
    case EFBIG: "too_large"
    case EPIPE, EBADF: "closed"
    default: "other"
    }
  }

  static func lines(in bytes: ArraySlice<UInt8>) -> Int { bytes.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) } }
}

import Dispatch
import Glibc
import Synchronization

/// One finished request, as SPEC §7 names the fields.
public struct AccessLogEntry: Sendable {
  public var ts: Double
  public var requestID: String
  public var client: String
  public var method: String
  /// Without the query string: it may hold secrets.
  public var path: String
  public var status: Int
  public var upstreamStatus: Int?
  public var durationMs: Double
  public var upstreamMs: Double?
  public var bytesIn: Int
  public var bytesOut: Int
  public var attempts: Int
  public var reauth: Bool
  public var error: String?

  public func jsonLine() -> String {
    var out: [UInt8] = []
    append(to: &out)
    return String(decoding: out, as: UTF8.self)
  }

  /// Appends the JSON line (without its newline) straight into a byte buffer: no intermediate
  /// strings, as this runs once per request on the worker's loop.
  public func append(to out: inout [UInt8]) {
    var timestamps = RFC3339.SecondCache()
    append(to: &out, timestamps: &timestamps)
  }

  /// `append(to:)` with the worker's timestamp cache.
  public func append(to out: inout [UInt8], timestamps: inout RFC3339.SecondCache) {
    // Each constant stretch (punctuation and the next key) is one copy.
    func raw(_ text: StaticString) { text.withUTF8Buffer { out.append(contentsOf: $0) } }
    func null() { raw("null") }
    raw(#"{"ts":""#)
    RFC3339.append(ts, to: &out, cache: &timestamps)
    raw(#"","request_id":"#)
    JSONText.appendQuoted(requestID, to: &out)
    raw(#","client":"#)
    JSONText.appendQuoted(client, to: &out)
    raw(#","method":"#)
    JSONText.appendQuoted(method, to: &out)
    raw(#","path":"#)
    JSONText.appendQuoted(path, to: &out)
    raw(#","status":"#)
    JSONText.appendInt(status, to: &out)
    raw(#","upstream_status":"#)
    if let upstreamStatus { JSONText.appendInt(upstreamStatus, to: &out) } else { null() }
    raw(#","duration_ms":"#)
    JSONText.appendMilliseconds(durationMs, to: &out)
    raw(#","upstream_ms":"#)
    if let upstreamMs { JSONText.appendMilliseconds(upstreamMs, to: &out) } else { null() }
    raw(#","bytes_in":"#)
    JSONText.appendInt(bytesIn, to: &out)
    raw(#","bytes_out":"#)
    JSONText.appendInt(bytesOut, to: &out)
    raw(#","attempts":"#)
    JSONText.appendInt(attempts, to: &out)
    raw(reauth ? #","reauth":true,"error":"# : #","reauth":false,"error":"#)
    if let error { JSONText.appendQuoted(error, to: &out) } else { null() }
    out.append(0x7D)
  }

  /// The path part of a request target.
  public static func path(of target: String) -> String {
    // Bytes, not Characters: faster, and "?" followed by a combining mark is still the query.
    guard let query = target.utf8.firstIndex(of: 0x3F) else { return target }
    return String(target[..<query])
  }
}

/// Where access-log lines end up: a file opened for appending, or stdout. Workers hand it whole
/// buffers of whole lines; one writer thread of its own writes them, so a slow disk never
/// blocks a worker and lines never interleave. Reopened on SIGUSR1 for logrotate.
public final class AccessLogSink: Sendable {
  private struct State {
    var fd: Int32
    var queue: [[UInt8]] = []
    var queuedBytes = 0
    var reopen = false
    var stopping = false
    var dropped = 0
  }
  private let state: Mutex<State>
  private let path: String
  private let wake = DispatchSemaphore(value: 0)
  private let stopped = DispatchSemaphore(value: 0)
  /// Past this much waiting for a stuck disk, new lines are dropped (and counted), not queued.
  static let maxQueuedBytes = 64 << 20

  public init(path: String) throws(ConfigErrors) {
    self.path = path
    state = Mutex(State(fd: try AccessLogSink.open(path)))
    let thread = LoopThread(name: "ap-access-log") { [self] in self.run() }
    thread.detach()
  }

  private static func open(_ path: String) throws(ConfigErrors) -> Int32 {
    if path == "-" { return 1 }
    let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
    guard fd >= 0 else {
      throw ConfigErrors(problems: ["--access-log: cannot open '\(path)' for appending (\(String(cString: strerror(errno))))"])
    }
    return fd
  }

  /// Queues whole lines for the writer thread; returns at once.
  public func write(_ bytes: [UInt8]) {
    let queued = state.withLock { state -> Bool in
      guard state.queuedBytes + bytes.count <= AccessLogSink.maxQueuedBytes else {
        state.dropped += bytes.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
        return false
      }
      state.queue.append(bytes)
      state.queuedBytes += bytes.count
      return true
    }
    if queued { wake.signal() }
  }

  /// Lines dropped because the disk did not keep up.
  public var droppedLines: Int { state.withLock { $0.dropped } }

  /// Opens the file again (after logrotate moved it).
  public func reopen() {
    state.withLock { $0.reopen = true }
    wake.signal()
  }

  /// Writes what is queued, then stops the writer (at exit).
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
    while true {
      wake.wait()
      let (batch, fd, reopen, stopping) = state.withLock { state in
        let batch = state.queue
        state.queue.removeAll(keepingCapacity: true)
        state.queuedBytes = 0
        defer { state.reopen = false }
        return (batch, state.fd, state.reopen, state.stopping)
      }
      for bytes in batch { AccessLogSink.writeAll(fd, bytes) }
      if reopen, path != "-", let fresh = try? AccessLogSink.open(path) {
        state.withLock { state in
          close(state.fd)
          state.fd = fresh
        }
      }
      if stopping && state.withLock({ $0.queue.isEmpty }) {
        state.withLock { state in if state.fd > 2 { close(state.fd) } }
        stopped.signal()
        return
      }
    }
  }

  private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { buffer in
      var offset = 0
      while offset < buffer.count {
        let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        offset += n
      }
    }
  }
}

/// A worker's own buffer of access-log lines, flushed every second, when large, and at exit.
final class AccessLogBuffer {
  private let sink: AccessLogSink
  private var buffer: [UInt8] = []
  private var timestamps = RFC3339.SecondCache()
  private var timer: Timer?
  private static let flushSize = 64 * 1024

  init(sink: AccessLogSink, loop: EventLoop) {
    self.sink = sink
    buffer.reserveCapacity(AccessLogBuffer.flushSize)
    timer = Timer(loop: loop) { [unowned self] in
      self.flush()
      self.timer?.schedule(after: 1)
    }
    timer?.schedule(after: 1)
  }

  func append(_ entry: AccessLogEntry) {
    entry.append(to: &buffer, timestamps: &timestamps)
    buffer.append(0x0A)
    if buffer.count >= AccessLogBuffer.flushSize { flush() }
  }

  func flush() {
    guard !buffer.isEmpty else { return }
    sink.write(buffer)
    buffer.removeAll(keepingCapacity: true)
  }
}

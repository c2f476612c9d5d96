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
    func ms(_ value: Double) -> String { value.isFinite ? String((value * 1000).rounded() / 1000) : "null" }
    var members: [(String, String)] = [
      ("ts", JSONText.quoted(RFC3339.format(ts))), ("request_id", JSONText.quoted(requestID)),
      ("client", JSONText.quoted(client)), ("method", JSONText.quoted(method)), ("path", JSONText.quoted(path)),
      ("status", String(status)), ("upstream_status", upstreamStatus.map(String.init) ?? "null"),
      ("duration_ms", ms(durationMs)), ("upstream_ms", upstreamMs.map(ms) ?? "null"), ("bytes_in", String(bytesIn)),
      ("bytes_out", String(bytesOut)), ("attempts", String(attempts)), ("reauth", reauth ? "true" : "false"),
    ]
    members.append(("error", error.map(JSONText.quoted) ?? "null"))
    return JSONText.object(members)
  }

  /// The path part of a request target.
  public static func path(of target: String) -> String { String(target.prefix { $0 != "?" }) }
}

/// Where access-log lines end up: a file opened for appending, or stdout. Shared by the
/// workers; each writes whole buffers of whole lines under the lock, so lines never interleave.
public final class AccessLogSink: Sendable {
  private let fd: Mutex<Int32>
  private let path: String

  public init(path: String) throws(ConfigErrors) {
    self.path = path
    fd = Mutex(try AccessLogSink.open(path))
  }

  private static func open(_ path: String) throws(ConfigErrors) -> Int32 {
    if path == "-" { return 1 }
    let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
    guard fd >= 0 else {
      throw ConfigErrors(problems: ["--access-log: cannot open '\(path)' for appending (\(String(cString: strerror(errno))))"])
    }
    return fd
  }

  public func write(_ bytes: [UInt8]) {
    fd.withLock { fd in
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

  /// Opens the file again (after logrotate moved it).
  public func reopen() {
    guard path != "-", let fresh = try? AccessLogSink.open(path) else { return }
    fd.withLock { fd in
      close(fd)
      fd = fresh
    }
  }

  deinit {
    fd.withLock { fd in if fd > 2 { close(fd) } }
  }
}

/// A worker's own buffer of access-log lines, flushed every second, when large, and at exit.
final class AccessLogBuffer {
  private let sink: AccessLogSink
  private var buffer: [UInt8] = []
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
    buffer.append(contentsOf: entry.jsonLine().utf8)
    buffer.append(0x0A)
    if buffer.count >= AccessLogBuffer.flushSize { flush() }
  }

  func flush() {
    guard !buffer.isEmpty else { return }
    sink.write(buffer)
    buffer.removeAll(keepingCapacity: true)
  }
}

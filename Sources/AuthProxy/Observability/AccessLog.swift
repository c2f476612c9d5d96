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
  /// The app of `--apps-file` that sent the request; nil (and no `app` member) when there is
  /// no apps file or the caller was not identified.
  public var app: String? = nil
  /// The W3C trace context the request went upstream with (its trace-id is logged); nil when
  /// not known (refused before its head was read).
  public var trace: TraceContext? = nil

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
    raw(#","trace_id":"#)
    if let trace {
      out.append(0x22)
      trace.appendTraceID(to: &out)
      out.append(0x22)
    } else {
      null()
    }
    raw(#","client":"#)
    JSONText.appendQuoted(client, to: &out)
    if let app {
      raw(#","app":"#)
      JSONText.appendQuoted(app, to: &out)
    }
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

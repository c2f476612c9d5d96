import FoundationEssentials
import Glibc

/// `authproxy monitor`'s reading of a JSON-lines access log (SPEC §7): what happened in the
/// window ending `now`. Counts only by fields, never by text: a line is a 401 because its
/// `upstream_status` is 401, not because "401" appears in it (the cron'd grep this replaces
/// counted request IDs and paths holding those digits). Malformed lines are counted and
/// skipped; a line whose leading `ts` is outside the window is skipped without being decoded.
/// Memory stays bounded however large the log is.
public struct AccessLogScan: Sendable {
  public let window: Double
  public let now: Double
  public var windowStart: Double { now - window }

  /// Files read, in order.
  public private(set) var files: [String] = []
  /// Problems with rotated files (unreadable, truncated .gz): reported, not fatal.
  public private(set) var warnings: [String] = []
  public private(set) var lines = 0
  public private(set) var malformed = 0
  public private(set) var inWindow = 0
  public private(set) var upstream401 = 0
  public private(set) var upstream403 = 0
  /// 403s whose line says it was the API's IP-whitelist refusal (`"ip_whitelist":true` or an
  /// `upstream_error` of FORBIDDEN); the proxy's access log does not carry that today.
  public private(set) var upstream403IPWhitelist = 0
  /// Answers the proxy made itself, by their `error` code.
  public private(set) var proxyErrors: [String: Int] = [:]
  private var paths401 = BoundedCounter()
  private var clients401 = BoundedCounter()
  private var paths403 = BoundedCounter()
  private var clients403 = BoundedCounter()
  /// Calls refused by route rules (`error: route_denied`), by "METHOD path" and by app.
  public private(set) var routeDenied = 0
  private var routesDenied = BoundedCounter()
  private var appsDenied = BoundedCounter()

  /// Lines longer than this are malformed (an access-log line is a few hundred bytes).
  public static let maxLineLength = 64 * 1024

  public init(window: Double, now: Double) {
    self.window = window
    self.now = now
  }

  public enum Failure: Error, Sendable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    public var description: String {
      switch self {
      case .unreadable(let path, let reason): "cannot read the access log '\(path)': \(reason)"
      }
    }
  }

  /// Scans `path` (or standard input for `-`), plus `path.1` and `path.1.gz` when they exist.
  /// `.gz` files are read through `gzip -dc`. Only an unreadable `path` is an error.
  public static func scan(path: String, window: Double, now: Double) throws(Failure) -> AccessLogScan {
    var scan = AccessLogScan(window: window, now: now)
    if path == "-" {
      scan.files.append("-")
      scan.read(fd: 0)
      return scan
    }
    for rotated in [path + ".1.gz", path + ".1"] where access(rotated, F_OK) == 0 {
      do throws(Failure) {
        try scan.consume(file: rotated)
      } catch {
        scan.warnings.append(error.description)
      }
    }
    try scan.consume(file: path)
    return scan
  }

  /// Reads one file (gzip-compressed when it ends in `.gz`).
  public mutating func consume(file path: String) throws(Failure) {
    if path.hasSuffix(".gz") {
      try consumeCompressed(path)
      return
    }
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    var info = stat()
    if fstat(fd, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
      throw .unreadable(path: path, reason: "it is a directory")
    }
    files.append(path)
    read(fd: fd)
  }

  private mutating func consumeCompressed(_ path: String) throws(Failure) {
    guard access(path, R_OK) == 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
    let gzip: ChildProcess
    do {
      gzip = try ChildProcess(
        arguments: ["gzip", "-dc", "--", path], environment: ["PATH": "/usr/bin:/bin:/usr/local/bin"], input: .nothing,
        captureOutput: true)
    } catch {
      throw .unreadable(path: path, reason: error.description)
    }
    files.append(path)
    if let fd = gzip.outputFD { read(fd: fd) }
    let exit = gzip.waitForExit()
    if !exit.isSuccess { warnings.append("gzip -dc '\(path)' ended with \(exit); counted what it gave") }
  }

  /// Reads lines from `fd` until end of file.
  private mutating func read(fd: Int32) {
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    var line: [UInt8] = []
    var overlong = false
    while true {
      let n = chunk.withUnsafeMutableBytes { raw in
        var n: Int
        repeat { n = Glibc.read(fd, raw.baseAddress!, raw.count) } while n < 0 && errno == EINTR
        return n
      }
      guard n > 0 else { break }
      chunk.withUnsafeBytes { raw in
        let base = raw.baseAddress!
        var start = 0
        while start < n, let newline = memchr(base + start, 0x0A, n - start) {
          let end = base.distance(to: UnsafeRawPointer(newline))
          if !overlong { line.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[start..<end])) }
          consume(line: overlong || line.count > Self.maxLineLength ? nil : line)
          line.removeAll(keepingCapacity: true)
          overlong = false
          start = end + 1
        }
        if !overlong && start < n {
          line.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[start..<n]))
          if line.count > Self.maxLineLength {
            overlong = true
            line.removeAll(keepingCapacity: true)
          }
        }
      }
    }
    if overlong || !line.isEmpty { consume(line: overlong ? nil : line) }
  }

  /// The fields the scan reads; anything else in a line is ignored.
  private struct Line: Decodable {
    var ts: String
    var client: String?
    var app: String?
    var method: String?
    var path: String?
    var upstream_status: Int?
    var error: String?
    var upstream_error: String?
    var ip_whitelist: Bool?
  }

  private static let decoder = JSONDecoder()

  /// Counts one line (without its newline); nil is an overlong line.
  public mutating func consume(line bytes: [UInt8]?) {
    guard let bytes else {
      lines += 1
      malformed += 1
      return
    }
    // Blank lines (a trailing newline, CRLF endings) are not lines.
    guard bytes.contains(where: { $0 != 0x20 && $0 != 0x0D && $0 != 0x09 }) else { return }
    lines += 1
    // The proxy writes `ts` first: a line plainly outside the window is skipped undecoded
    // (most of a day-long rotated file, for an hour's window).
    if let ts = Self.leadingTimestamp(bytes), ts <= windowStart || ts > now { return }
    guard let entry = try? Self.decoder.decode(Line.self, from: Data(bytes)), let ts = RFC3339.parse(entry.ts) else {
      malformed += 1
      return
    }
    guard ts > windowStart, ts <= now else { return }
    inWindow += 1
    if let code = entry.error, !code.isEmpty { proxyErrors[String(code.prefix(64)), default: 0] += 1 }
    let path = String((entry.path ?? "(none)").prefix { $0 != "?" }.prefix(SecurityMonitor.labelLimit))
    let client = String((entry.client ?? "(none)").prefix(64))
    if entry.error == "route_denied" {
      routeDenied += 1
      routesDenied.add(String(((entry.method ?? "?").prefix(16)) + " " + path))
      if let app = entry.app { appsDenied.add(String(app.prefix(64))) }
    }
    switch entry.upstream_status {
    case 401:
      upstream401 += 1
      paths401.add(path)
      clients401.add(client)
    case 403:
      upstream403 += 1
      paths403.add(path)
      clients403.add(client)
      if entry.ip_whitelist == true || entry.upstream_error?.uppercased() == "FORBIDDEN" { upstream403IPWhitelist += 1 }
    default:
      break
    }
  }

  private static let tsPrefix = Array(#"{"ts":""#.utf8)

  /// The time of a line that starts `{"ts":"…"` (and ends with `}`), without decoding the rest.
  private static func leadingTimestamp(_ bytes: [UInt8]) -> Double? {
    guard bytes.count > tsPrefix.count + 20, bytes.starts(with: tsPrefix),
      bytes.last(where: { $0 != 0x20 && $0 != 0x0D && $0 != 0x09 }) == 0x7D
    else { return nil }
    let start = tsPrefix.count
    guard let end = bytes[start...].prefix(40).firstIndex(of: 0x22) else { return nil }
    return RFC3339.parse(String(decoding: bytes[start..<end], as: UTF8.self))
  }

  public func topPaths(_ status: Int, limit: Int = 5) -> [SecurityAlert.PathCount] {
    (status == 401 ? paths401 : paths403).top(limit)
  }

  public func topClients(_ status: Int, limit: Int = 5) -> [SecurityAlert.PathCount] {
    (status == 401 ? clients401 : clients403).top(limit)
  }

  /// The alerts of the rules whose threshold the window reached.
  public func alerts(thresholds: SecurityMonitor.Thresholds, host: String = SecurityAlert.hostName()) -> [SecurityAlert] {
    var alerts: [SecurityAlert] = []
    if upstream401 >= thresholds.failedAuth {
      alerts.append(
        SecurityAlert(
          rule: .failedAuth, count: upstream401, threshold: thresholds.failedAuth, windowSeconds: window, time: now, host: host,
          topPaths: topPaths(401), topClients: topClients(401)))
    }
    if upstream403 >= thresholds.forbiddenAccess {
      alerts.append(
        SecurityAlert(
          rule: .forbiddenAccess, count: upstream403, threshold: thresholds.forbiddenAccess, windowSeconds: window, time: now,
          host: host, ipWhitelist: upstream403IPWhitelist > 0, topPaths: topPaths(403), topClients: topClients(403)))
    }
    if routeDenied >= thresholds.routeDenied {
      var alert = SecurityAlert(
        rule: .routeDenied, count: routeDenied, threshold: thresholds.routeDenied, windowSeconds: window, time: now, host: host,
        topPaths: routesDenied.top(5))
      alert.topApps = appsDenied.top(5)
      alerts.append(alert)
    }
    return alerts
  }

  /// The printed summary: counts per rule with thresholds, proxy-made errors, top paths and clients.
  public func report(thresholds: SecurityMonitor.Thresholds) -> String {
    func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(1, width - text.count)) }
    func verdict(_ count: Int, _ threshold: Int) -> String { count >= threshold ? "ALERT" : "ok" }
    func list(_ items: [SecurityAlert.PathCount]) -> String {
      items.isEmpty ? "-" : items.map { "\($0.path) (\($0.count))" }.joined(separator: ", ")
    }
    var out: [String] = []
    out.append(
      "access log: \(files.joined(separator: ", ")); window \(SecurityAlert.formatDuration(window)) from \(RFC3339.format(windowStart, milliseconds: false)) to \(RFC3339.format(now, milliseconds: false))"
    )
    out.append("lines: \(lines) read, \(inWindow) in the window, \(malformed) malformed (skipped)")
    out.append(
      pad("failed_auth", 18) + pad("upstream 401: \(upstream401)", 22) + pad("threshold \(thresholds.failedAuth)", 14)
        + verdict(upstream401, thresholds.failedAuth))
    out.append(
      pad("forbidden_access", 18) + pad("upstream 403: \(upstream403)", 22) + pad("threshold \(thresholds.forbiddenAccess)", 14)
        + verdict(upstream403, thresholds.forbiddenAccess) + " (IP-whitelist refusals: \(upstream403IPWhitelist))")
    out.append(
      pad("route_denied", 18) + pad("refused routes: \(routeDenied)", 22) + pad("threshold \(thresholds.routeDenied)", 14)
        + verdict(routeDenied, thresholds.routeDenied) + " (top apps: \(list(appsDenied.top(5))))")
    out.append(pad("login_failure", 18) + "not in the access log: see the proxy's diagnostic log")
    out.append(pad("rotation_failure", 18) + "not in the access log: see the proxy's diagnostic log")
    let errors = proxyErrors.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
    out.append("proxy-made errors: " + (errors.isEmpty ? "none" : errors.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
    out.append("top paths behind 401: " + list(topPaths(401)))
    out.append("top clients behind 401: " + list(topClients(401)))
    out.append("top paths behind 403: " + list(topPaths(403)))
    out.append("top clients behind 403: " + list(topClients(403)))
    for warning in warnings { out.append("warning: \(warning)") }
    return out.joined(separator: "\n")
  }
}

/// Counts of values with a bounded number of distinct keys: beyond `limit`, new values are
/// counted together as "(other)".
private struct BoundedCounter: Sendable {
  static let limit = 10_000
  private var counts: [String: Int] = [:]

  mutating func add(_ value: String) {
    if counts[value] == nil && counts.count >= Self.limit {
      counts["(other)", default: 0] += 1
    } else {
      counts[value, default: 0] += 1
    }
  }

  func top(_ limit: Int) -> [SecurityAlert.PathCount] {
    counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(limit).map {
      SecurityAlert.PathCount(path: $0.key, count: $0.value)
    }
  }
}

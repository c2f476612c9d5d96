import Foundation
import Testing

@testable import AuthProxy
import TestSupport

// MARK: - Builders

/// 2026-11-29T10:00:00Z: the end of every scan's window here.
private let now = 1_795_946_400.0

/// An access-log line as the proxy writes it, `secondsAgo` before `now`.
private func line(
  _ secondsAgo: Double, upstream: Int?, status: Int? = nil, path: String = "/api/v1/orders", client: String = "127.0.0.1",
  error: String? = nil, requestID: String = "req-1"
) -> String {
  AccessLogEntry(
    ts: now - secondsAgo, requestID: requestID, client: client, method: "GET", path: path, status: status ?? upstream ?? 502,
    upstreamStatus: upstream, durationMs: 3, upstreamMs: upstream == nil ? nil : 2, bytesIn: 0, bytesOut: 10, attempts: 1,
    reauth: false, error: error
  ).jsonLine()
}

private func write(_ lines: [String], to path: String) throws {
  try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
}

private func scan(_ lines: [String], window: Double = 3600) -> AccessLogScan {
  var scan = AccessLogScan(window: window, now: now)
  for text in lines { scan.consume(line: Array(text.utf8)) }
  return scan
}

// MARK: - Specification

@Suite struct AccessLogScanTests {

  @Test func countsUpstream401sAnd403sByTheirField() {
    let result = scan([
      line(10, upstream: 401), line(20, upstream: 401), line(30, upstream: 403), line(40, upstream: 200),
      line(50, upstream: 500), line(60, upstream: nil, error: "no_token"),
    ])
    #expect(result.lines == 6)
    #expect(result.inWindow == 6)
    #expect(result.upstream401 == 2)
    #expect(result.upstream403 == 1)
    #expect(result.malformed == 0)
  }

  @Test func aLineIsNotA401BecauseTheDigitsAppearInIt() {
    let result = scan([
      line(10, upstream: 200, path: "/api/v1/orders/401"), line(11, upstream: 200, requestID: "401-401-401"),
      line(12, upstream: 200, client: "10.0.4.01"), line(13, upstream: nil, status: 403, path: "/auth/login", error: "forbidden"),
      #"{"ts":"2026-11-29T09:59:00Z","status":200,"upstream_status":200,"note":"upstream_status 401"}"#,
    ])
    #expect(result.upstream401 == 0)
    #expect(result.upstream403 == 0, "a 403 the proxy made itself is not an upstream 403")
    #expect(result.proxyErrors == ["forbidden": 1])
  }

  @Test func malformedLinesAreCountedAndSkipped() {
    let result = scan([
      "not json at all upstream_status 401", #"{"ts":"2026-11-29T09:59:00Z","upstream_status":401"#, #"{"upstream_status":401}"#,
      #"{"ts":"yesterday","upstream_status":401}"#, #"{"ts":"2026-11-29T09:59:00Z","upstream_status":"401"}"#, "[401]",
      line(5, upstream: 401), "",
    ])
    #expect(result.malformed == 6)
    #expect(result.lines == 7, "a blank line is not a line")
    #expect(result.upstream401 == 1)
  }

  @Test func onlyLinesInTheWindowEndingNowCount() {
    let result = scan(
      [line(7200, upstream: 401), line(3600, upstream: 401), line(3599, upstream: 401), line(0, upstream: 401), line(-60, upstream: 401)],
      window: 3600)
    #expect(result.lines == 5)
    #expect(result.inWindow == 2, "the window is (now-1h, now]: exactly 1h ago and the future are out")
    #expect(result.upstream401 == 2)
  }

  @Test func proxyMadeErrorsAreCountedByCode() {
    let result = scan([
      line(1, upstream: nil, error: "no_token"), line(2, upstream: nil, error: "no_token"),
      line(3, upstream: nil, error: "upstream_timeout"), line(4, upstream: 200),
    ])
    #expect(result.proxyErrors == ["no_token": 2, "upstream_timeout": 1])
  }

  @Test func topPathsAndClientsBehind401And403() {
    var lines: [String] = []
    for i in 0..<7 { lines.append(line(Double(i), upstream: 401, path: "/api/v1/orders", client: "10.0.0.1")) }
    for i in 0..<3 { lines.append(line(Double(i), upstream: 401, path: "/api/v1/wallet", client: "10.0.0.2")) }
    for p in ["/a", "/b", "/c", "/d", "/e"] { lines.append(line(1, upstream: 401, path: p, client: "10.0.0.3")) }
    lines.append(line(1, upstream: 403, path: "/api/v1/admin", client: "10.0.0.9"))
    let result = scan(lines)
    #expect(result.topPaths(401).map(\.path) == ["/api/v1/orders", "/api/v1/wallet", "/a", "/b", "/c"])
    #expect(result.topPaths(401).map(\.count) == [7, 3, 1, 1, 1])
    #expect(result.topClients(401).first == SecurityAlert.PathCount(path: "10.0.0.1", count: 7))
    #expect(result.topPaths(403) == [SecurityAlert.PathCount(path: "/api/v1/admin", count: 1)])
    #expect(result.topClients(403).map(\.path) == ["10.0.0.9"])
  }

  @Test func alertsWhenAThresholdIsReached() throws {
    var lines = (0..<10).map { line(Double($0), upstream: 401) }
    lines += (0..<4).map { line(Double($0), upstream: 403) }
    let result = scan(lines)
    let alerts = result.alerts(thresholds: .init(), host: "h")
    #expect(alerts.map(\.rule) == [.failedAuth])
    let failedAuth = try #require(alerts.first)
    #expect(failedAuth.count == 10)
    #expect(failedAuth.windowSeconds == 3600)
    #expect(failedAuth.time == now)
    #expect(result.alerts(thresholds: .init(failedAuth: 11, forbiddenAccess: 4), host: "h").map(\.rule) == [.forbiddenAccess])
  }

  @Test func ipWhitelist403sAreCountedWhenTheLineShowsIt() throws {
    let result = scan([
      line(1, upstream: 403), #"{"ts":"2026-11-29T09:59:00Z","upstream_status":403,"path":"/x","ip_whitelist":true}"#,
      #"{"ts":"2026-11-29T09:59:01Z","upstream_status":403,"path":"/x","upstream_error":"FORBIDDEN"}"#,
    ])
    #expect(result.upstream403 == 3)
    #expect(result.upstream403IPWhitelist == 2)
    let alert = try #require(result.alerts(thresholds: .init(forbiddenAccess: 3), host: "h").first)
    #expect(alert.ipWhitelist == true)
  }

  @Test func readsTheFileAndItsRotatedPredecessors() throws {
    let directory = temporaryDirectory("authproxy-scan")
    let path = directory + "/access.log"
    try write([line(100, upstream: 401), line(7200, upstream: 401)], to: path + ".1")
    try write([line(50, upstream: 403), "garbage"], to: path + ".2")
    try write([line(10, upstream: 401), "{broken"], to: path)
    let result = try AccessLogScan.scan(path: path, window: 3600, now: now)
    #expect(result.files == [path + ".1", path])
    #expect(result.upstream401 == 2)
    #expect(result.upstream403 == 0, ".2 is older than the window's reach and not read")
    #expect(result.lines == 4)
    #expect(result.malformed == 1)
  }

  @Test func readsACompressedRotatedFile() throws {
    let directory = temporaryDirectory("authproxy-scan")
    let path = directory + "/access.log"
    try write([line(100, upstream: 401), line(200, upstream: 401), "garbage"], to: path + ".1")
    let gzip = Process()
    gzip.executableURL = URL(fileURLWithPath: "/bin/sh")
    gzip.arguments = ["-c", "gzip -n '\(path).1'"]
    try gzip.run()
    gzip.waitUntilExit()
    #expect(FileManager.default.fileExists(atPath: path + ".1.gz"))
    try write([line(10, upstream: 401)], to: path)
    let result = try AccessLogScan.scan(path: path, window: 3600, now: now)
    #expect(result.files == [path + ".1.gz", path])
    #expect(result.upstream401 == 3)
    #expect(result.malformed == 1)
    #expect(result.warnings.isEmpty)
  }

  @Test func aTruncatedCompressedFileIsAWarningNotAFailure() throws {
    let directory = temporaryDirectory("authproxy-scan")
    let path = directory + "/access.log"
    try Data([0x1F, 0x8B, 0x08, 0x00, 0x01]).write(to: URL(fileURLWithPath: path + ".1.gz"))
    try write([line(10, upstream: 401)], to: path)
    let result = try AccessLogScan.scan(path: path, window: 3600, now: now)
    #expect(result.upstream401 == 1)
    #expect(result.warnings.count == 1)
  }

  @Test func anUnreadableLogIsAnError() {
    #expect(throws: AccessLogScan.Failure.self) { try AccessLogScan.scan(path: "/nonexistent/access.log", window: 60, now: now) }
    #expect(throws: AccessLogScan.Failure.self) { try AccessLogScan.scan(path: NSTemporaryDirectory(), window: 60, now: now) }
  }

  @Test func anOverlongLineIsMalformedAndTheNextOneStillCounts() throws {
    let directory = temporaryDirectory("authproxy-scan")
    let path = directory + "/access.log"
    let huge = #"{"ts":"2026-11-29T09:59:00Z","upstream_status":401,"path":""# + String(repeating: "x", count: 300_000) + #""}"#
    try write([huge, line(1, upstream: 401)], to: path)
    let result = try AccessLogScan.scan(path: path, window: 3600, now: now)
    #expect(result.malformed == 1)
    #expect(result.upstream401 == 1)
    #expect(result.lines == 2)
  }

  @Test func theReportShowsCountsThresholdsAndTopPaths() {
    let result = scan(
      (0..<12).map { line(Double($0), upstream: 401, path: "/api/v1/orders") } + [line(1, upstream: nil, error: "no_token")])
    let report = result.report(thresholds: .init())
    #expect(report.contains("failed_auth"))
    #expect(report.contains("upstream 401: 12"))
    #expect(report.contains("threshold 10"))
    #expect(report.contains("ALERT"))
    #expect(report.contains("upstream 403: 0"))
    #expect(report.contains("no_token 1"))
    #expect(report.contains("top paths behind 401: /api/v1/orders (12)"))
  }
}

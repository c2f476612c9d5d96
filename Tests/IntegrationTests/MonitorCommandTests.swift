import AuthProxy
import Foundation
import Testing
import TestSupport

// MARK: - Builders

private let now = "2026-11-29T10:00:00Z"
private let nowSeconds = 1_795_946_400.0

/// An access-log line as the proxy writes it (SPEC §7), `secondsAgo` before `now`.
private func line(_ secondsAgo: Double, upstream: Int?, path: String = "/api/v1/orders", error: String? = nil) -> String {
  let ts = RFC3339.format(nowSeconds - secondsAgo)
  let upstreamStatus = upstream.map(String.init) ?? "null"
  let errorCode = error.map { "\"\($0)\"" } ?? "null"
  return #"{"ts":"\#(ts)","request_id":"req-401","client":"127.0.0.1","method":"GET","path":"\#(path)","status":\#(upstream ?? 503),"#
    + #""upstream_status":\#(upstreamStatus),"duration_ms":3,"upstream_ms":2,"bytes_in":0,"bytes_out":10,"attempts":1,"#
    + #""reauth":false,"error":\#(errorCode)}"#
}

/// A log file in a fresh directory.
private func accessLog(_ lines: [String]) throws -> String {
  let path = temporaryDirectory("authproxy-monitor") + "/access.log"
  try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
  return path
}

private func monitor(_ log: String, _ extra: [String] = [], environment: [String: String] = [:]) throws -> BinaryRun {
  try runBinary(["monitor", "--access-log", log, "--now", now] + extra, environment: environment, timeout: 30)
}

/// A webhook receiver that answers every POST with `status` (the binary posts to it while the
/// test waits).
func webhookReceiver(status: Int) throws -> LoopbackHTTPServer {
  try LoopbackHTTPServer(name: "fake-webhook") { _ in .init(status: status) }
}

// MARK: - Specification

@Suite(.serialized) struct MonitorCommandTests {

  @Test func aQuietLogExits0AndPrintsTheCounts() throws {
    let log = try accessLog([line(60, upstream: 401), line(120, upstream: 403), line(180, upstream: 200)])
    let run = try monitor(log)
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stdout.contains("upstream 401: 1"))
    #expect(run.stdout.contains("upstream 403: 1"))
    #expect(run.stdout.contains("threshold 10"))
    #expect(run.stdout.contains("threshold 5"))
    #expect(!run.stdout.contains("ALERT"))
  }

  @Test func aBurstOf401sExits1AndRunsTheCommand() throws {
    let log = try accessLog((0..<12).map { line(Double($0 * 10), upstream: 401, path: "/api/v1/wallet") })
    let out = temporaryDirectory("authproxy-monitor") + "/alert.txt"
    let run = try monitor(log, ["--alert-command", "cat > '\(out)'"])
    #expect(run.status == 1, "\(run.stderr)")
    #expect(run.stdout.contains("upstream 401: 12"))
    #expect(run.stdout.contains("ALERT"))
    #expect(run.stdout.contains("/api/v1/wallet (12)"))
    let message = try String(contentsOfFile: out, encoding: .utf8)
    #expect(message.contains("failed_auth"))
    #expect(message.contains("12 upstream 401"))
    #expect(run.stderr.contains("failed_auth"), "the diagnostic log gets the alert too")
  }

  @Test func aBurstOf403sIsPostedToTheWebhook() throws {
    let receiver = try webhookReceiver(status: 200)
    defer { receiver.stop() }
    let log = try accessLog((0..<5).map { line(Double($0), upstream: 403) })
    let run = try monitor(log, ["--alert-webhook", "\(receiver.url("/hook"))"])
    #expect(run.status == 1, "\(run.stderr)")
    let bodies = receiver.requests.map(\.bodyText)
    #expect(bodies.count == 1)
    let object = try #require(try JSONSerialization.jsonObject(with: Data((bodies.first ?? "").utf8)) as? [String: Any])
    #expect(object["rule"] as? String == "forbidden_access")
    #expect(object["count"] as? Int == 5)
    #expect(object["threshold"] as? Int == 5)
    #expect(object["window_seconds"] as? Int == 3600)
    #expect(object["time"] as? String == "2026-11-29T10:00:00.000Z")
  }

  @Test func aFailingSinkStillExits1AndSaysSo() throws {
    let receiver = try webhookReceiver(status: 404)
    defer { receiver.stop() }
    let log = try accessLog((0..<10).map { line(Double($0), upstream: 401) })
    let run = try monitor(log, ["--alert-webhook", "\(receiver.url("/hook"))", "--alert-command", "exit 2"])
    #expect(run.status == 1)
    #expect(run.stderr.contains("HTTP 404"))
    #expect(run.stderr.contains("exit status 2"))
  }

  @Test func linesThatOnlyMention401DoNotAlert() throws {
    let lines = (0..<20).map { line(Double($0), upstream: 200, path: "/api/v1/orders/401") }
    let log = try accessLog(lines + ["upstream_status 401 — a grep would count this"])
    let run = try monitor(log, ["--alert-401-threshold", "1"])
    #expect(run.status == 0, "\(run.stdout)")
    #expect(run.stdout.contains("upstream 401: 0"))
    #expect(run.stdout.contains("1 malformed"))
  }

  @Test func theWindowDecidesWhatCounts() throws {
    let log = try accessLog((0..<10).map { line(Double(1000 + $0), upstream: 401) })
    #expect(try monitor(log, ["--window", "15m"]).status == 0)
    #expect(try monitor(log, ["--window", "1h"]).status == 1)
  }

  @Test func thresholdsComeFromFlagsOrVariables() throws {
    let log = try accessLog((0..<3).map { line(Double($0), upstream: 401) })
    #expect(try monitor(log).status == 0)
    #expect(try monitor(log, ["--alert-401-threshold", "3"]).status == 1)
    #expect(try monitor(log, environment: ["AUTHPROXY_ALERT_401_THRESHOLD": "2"]).status == 1)
    #expect(try monitor(log, ["--alert-401-threshold", "4"], environment: ["AUTHPROXY_ALERT_401_THRESHOLD": "2"]).status == 0)
  }

  @Test func badInputExits64NamingTheFlag() throws {
    let log = try accessLog([line(1, upstream: 401)])
    let missing = try runBinary(["monitor"])
    #expect(missing.status == 64)
    #expect(missing.stderr.contains("--access-log"))

    let unreadable = try runBinary(["monitor", "--access-log", "/nonexistent/access.log"])
    #expect(unreadable.status == 64)
    #expect(unreadable.stderr.contains("/nonexistent/access.log"))

    for (flag, value) in [
      ("--window", "soon"), ("--alert-401-threshold", "zero"), ("--alert-403-threshold", "-1"), ("--now", "yesterday"),
      ("--alert-webhook", "http://alerts.example.com/hook"),
    ] {
      let run = try monitor(log, [flag, value])
      #expect(run.status == 64, "\(flag) \(value)")
      #expect(run.stderr.contains(flag), "\(flag): \(run.stderr)")
    }
    #expect(try runBinary(["monitor", "--access-log", log, "--no-such-flag"]).status == 64)
  }

  @Test func helpDocumentsEveryFlagWithItsVariable() throws {
    let run = try runBinary(["monitor", "--help"])
    #expect(run.status == 0)
    for flag in ["access-log", "window", "alert-401-threshold", "alert-403-threshold", "alert-webhook", "alert-command", "now"] {
      #expect(run.stdout.contains("--\(flag)"), "\(flag)")
    }
    // The help is wrapped to the terminal: compare with the line breaks folded.
    let text = run.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    for variable in ["AUTHPROXY_ACCESS_LOG", "AUTHPROXY_WINDOW", "AUTHPROXY_ALERT_401_THRESHOLD", "AUTHPROXY_ALERT_WEBHOOK"] {
      #expect(text.contains(variable), "\(variable)")
    }
    #expect(text.contains("default: 1h"))
    #expect(text.contains("default: 10;"))
  }
}

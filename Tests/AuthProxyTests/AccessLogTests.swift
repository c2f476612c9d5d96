import Foundation
import Testing

@testable import AuthProxy

// MARK: - Builders

/// 2026-11-29T10:00:00.250Z.
private let finishedAt = 1_795_946_400.25

private func entry(_ configure: (inout AccessLogEntry) -> Void = { _ in }) -> AccessLogEntry {
  var entry = AccessLogEntry(
    ts: finishedAt, requestID: "req-1", client: "127.0.0.1", method: "GET", path: "/api/v1/orders", status: 200,
    upstreamStatus: 200, durationMs: 12.5, upstreamMs: 10.25, bytesIn: 0, bytesOut: 512, attempts: 1, reauth: false,
    error: nil)
  configure(&entry)
  return entry
}

private func parsed(_ entry: AccessLogEntry) throws -> [String: Any] {
  let line = entry.jsonLine()
  return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
}

/// SPEC §7, in its order.
private let specFields = [
  "ts", "request_id", "trace_id", "client", "method", "path", "status", "upstream_status", "duration_ms", "upstream_ms", "bytes_in",
  "bytes_out", "attempts", "reauth", "error",
]

// MARK: - Specification

@Suite struct AccessLogTests {

  @Test func lineHasEveryFieldOfTheSpecAndNoOther() throws {
    let object = try parsed(entry())
    #expect(Set(object.keys) == Set(specFields))
  }

  @Test func lineListsTheFieldsInTheSpecsOrder() {
    let line = entry().jsonLine()
    let positions = specFields.compactMap { line.range(of: "\"\($0)\":")?.lowerBound }
    #expect(positions.count == specFields.count)
    #expect(positions == positions.sorted())
  }

  @Test func traceIDIsNullUntilKnownThenQuoted() {
    #expect(entry().jsonLine().contains(#""trace_id":null,"#))
    let line = entry { $0.trace = TraceContext(traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") }.jsonLine()
    #expect(line.contains(#""trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","#))
  }

  @Test func lineIsOneLine() {
    let line = entry {
      $0.path = "/x\ny"
      $0.client = "::1"
    }.jsonLine()
    #expect(!line.contains("\n") && !line.contains("\r"))
  }

  @Test func lineCarriesTheValues() throws {
    let object = try parsed(entry())
    #expect(object["ts"] as? String == "2026-11-29T10:00:00.250Z")
    #expect(object["request_id"] as? String == "req-1")
    #expect(object["client"] as? String == "127.0.0.1")
    #expect(object["method"] as? String == "GET")
    #expect(object["path"] as? String == "/api/v1/orders")
    #expect(object["status"] as? Int == 200)
    #expect(object["upstream_status"] as? Int == 200)
    #expect(object["duration_ms"] as? Double == 12.5)
    #expect(object["upstream_ms"] as? Double == 10.25)
    #expect(object["bytes_in"] as? Int == 0)
    #expect(object["bytes_out"] as? Int == 512)
    #expect(object["attempts"] as? Int == 1)
    #expect(object["reauth"] as? Bool == false)
    #expect(object["error"] is NSNull)
  }

  @Test func proxyMadeAnswerHasNoUpstreamFieldsAndNamesTheError() throws {
    let object = try parsed(
      entry {
        $0.status = 503
        $0.upstreamStatus = nil
        $0.upstreamMs = nil
        $0.attempts = 0
        $0.error = "no_token"
      })
    #expect(object["status"] as? Int == 503)
    #expect(object["upstream_status"] is NSNull)
    #expect(object["upstream_ms"] is NSNull)
    #expect(object["error"] as? String == "no_token")
  }

  @Test func reauthIsABoolean() throws {
    let object = try parsed(
      entry {
        $0.reauth = true
        $0.attempts = 2
        $0.upstreamStatus = 200
      })
    #expect(object["reauth"] as? Bool == true)
    #expect(object["attempts"] as? Int == 2)
  }

  @Test func durationsAreRoundedToMicroseconds() throws {
    let object = try parsed(entry { $0.durationMs = 1.234_567_89 })
    #expect(object["duration_ms"] as? Double == 1.235)
  }

  @Test(arguments: [Double.nan, .infinity, -.infinity])
  func nonFiniteDurationsAreNull(value: Double) throws {
    let line = entry {
      $0.durationMs = value
      $0.upstreamMs = value
    }.jsonLine()
    #expect(!line.contains("nan") && !line.contains("inf"))
    let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    #expect(object["duration_ms"] is NSNull)
    #expect(object["upstream_ms"] is NSNull)
    #expect(Set(object.keys) == Set(specFields))
  }

  @Test func nonFiniteDurationLeavesTheOtherFinite() throws {
    let object = try parsed(
      entry {
        $0.durationMs = .nan
        $0.upstreamMs = 10.25
      })
    #expect(object["duration_ms"] is NSNull)
    #expect(object["upstream_ms"] as? Double == 10.25)
  }

  @Test func awkwardTextStaysValidJSON() throws {
    let object = try parsed(
      entry {
        $0.path = "/a\"b\\c\u{01}\u{2028}é"
        $0.method = "PO\"ST"
      })
    #expect(object["path"] as? String == "/a\"b\\c\u{01}\u{2028}é")
    #expect(object["method"] as? String == "PO\"ST")
  }

  // MARK: The path

  @Test(arguments: [
    ("/api/v1/orders?token=secret", "/api/v1/orders"), ("/api/v1/orders", "/api/v1/orders"), ("/?a=1?b=2", "/"),
    ("/search?", "/search"), ("/a%3Fb?c", "/a%3Fb"),
  ])
  func pathLeavesTheQueryOut(target: String, path: String) {
    #expect(AccessLogEntry.path(of: target) == path)
  }

  @Test func queryNeverReachesTheLine() {
    let line = entry { $0.path = AccessLogEntry.path(of: "/api/v1/orders?api_key=hunter2") }.jsonLine()
    #expect(!line.contains("hunter2"))
  }
}

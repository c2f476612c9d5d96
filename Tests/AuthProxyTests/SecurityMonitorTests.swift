import Foundation
import Testing

@testable import AuthProxy

// MARK: - Builders

/// 2026-11-29T10:00:00Z.
private let t0 = 1_795_946_400.0
private let window = 900.0

/// The monitor under test, behind a reference so the expectation macros can call it.
private final class Subject {
  var monitor: SecurityMonitor
  init(_ monitor: SecurityMonitor) { self.monitor = monitor }
  func record(_ event: SecurityEvent, now: Double) -> SecurityAlert? { monitor.record(event, now: now) }
  func record(_ entry: AccessLogEntry) -> SecurityAlert? { monitor.record(entry) }
  func count(_ rule: SecurityAlert.Rule, now: Double) -> Int { monitor.count(rule, now: now) }
  var retainedEvents: Int { monitor.retainedEvents }
}

private func monitor(_ thresholds: SecurityMonitor.Thresholds = .init(), window: Double = window) -> Subject {
  Subject(SecurityMonitor(window: window, thresholds: thresholds, host: "proxy-1"))
}

private func unauthorized(_ path: String = "/api/v1/orders") -> SecurityEvent {
  .upstreamAnswer(status: 401, path: path)
}

private func forbidden(_ path: String = "/api/v1/wallet", ipWhitelist: Bool = false) -> SecurityEvent {
  .upstreamAnswer(status: 403, path: path, ipWhitelist: ipWhitelist)
}

/// Records `event` `times` times, `spacing` seconds apart from `start`; returns the alerts.
private func feed(
  _ monitor: Subject, _ event: SecurityEvent, times: Int, from start: Double, spacing: Double = 1
) -> [SecurityAlert] {
  (0..<times).compactMap { monitor.record(event, now: start + Double($0) * spacing) }
}

// MARK: - Specification

@Suite struct SecurityMonitorTests {

  @Test func failedAuthFiresWhenTheTenth401FallsInTheWindow() throws {
    let m = monitor()
    #expect(feed(m, unauthorized(), times: 9, from: t0).isEmpty)
    let alert = try #require(m.record(unauthorized(), now: t0 + 9))
    #expect(alert.rule == .failedAuth)
    #expect(alert.count == 10)
    #expect(alert.threshold == 10)
    #expect(alert.windowSeconds == 900)
    #expect(alert.time == t0 + 9)
    #expect(alert.host == "proxy-1")
    #expect(alert.ipWhitelist == nil)
  }

  @Test func eventsThatSlidOutOfTheWindowNoLongerCount() {
    let m = monitor()
    // Nine 401s at t0 … t0+8, then the window slides past the first of them.
    _ = feed(m, unauthorized(), times: 9, from: t0)
    #expect(m.record(unauthorized(), now: t0 + 900) == nil, "the 401 at t0 is exactly one window old: out")
    #expect(m.count(.failedAuth, now: t0 + 900) == 9)
    #expect(m.count(.failedAuth, now: t0 + 2000) == 0)
    // t0+1 … t0+8 and t0+900 are in; one more makes ten.
    #expect(m.record(unauthorized(), now: t0 + 900.5)?.count == 10)
  }

  @Test func sparse401sNeverFire() {
    let m = monitor()
    // One 401 every 100 s: at most 9 are ever in a 900 s window.
    #expect(feed(m, unauthorized(), times: 1000, from: t0, spacing: 100).isEmpty)
  }

  @Test func oneAlertPerRulePerWindow() throws {
    let m = monitor()
    let first = feed(m, unauthorized(), times: 10, from: t0)
    #expect(first.count == 1)
    // A storm for the rest of the window: quiet.
    #expect(feed(m, unauthorized(), times: 880, from: t0 + 10).isEmpty)
    // Still one event short of a full window since it fired (at t0+9).
    #expect(m.record(unauthorized(), now: t0 + 908.9) == nil)
    let second = try #require(m.record(unauthorized(), now: t0 + 909))
    #expect(second.count > second.threshold, "the second alert reports the storm, not just the threshold")
  }

  @Test func aRuleFiringDoesNotSilenceTheOthers() {
    let m = monitor()
    #expect(feed(m, unauthorized(), times: 10, from: t0).count == 1)
    let forbiddenAlerts = feed(m, forbidden(), times: 5, from: t0 + 20)
    #expect(forbiddenAlerts.map(\.rule) == [.forbiddenAccess])
    #expect(m.record(.rotationFailed(reason: "new login refused"), now: t0 + 30)?.rule == .rotationFailure)
  }

  @Test func forbiddenAccessSaysWhenOneOfThe403sWasTheIPWhitelistAnswer() throws {
    let m = monitor()
    _ = feed(m, forbidden(), times: 3, from: t0)
    _ = m.record(forbidden(ipWhitelist: true), now: t0 + 3)
    let alert = try #require(m.record(forbidden(), now: t0 + 4))
    #expect(alert.rule == .forbiddenAccess)
    #expect(alert.threshold == 5)
    #expect(alert.ipWhitelist == true)
    #expect(alert.message.contains("IP address"))
  }

  @Test func forbiddenAccessWithoutAnIPWhitelistAnswerSaysSo() throws {
    let m = monitor()
    // An IP-whitelist 403 long before the window does not colour this burst.
    _ = m.record(forbidden(ipWhitelist: true), now: t0 - 5000)
    let alert = try #require(feed(m, forbidden(), times: 5, from: t0).first)
    #expect(alert.ipWhitelist == false)
    #expect(alert.count == 5)
    #expect(!alert.message.contains("IP address"))
  }

  @Test func loginFailureCountsLoginsAndRefreshesAtItsOwnThreshold() throws {
    let m = monitor()
    #expect(m.record(.loginFailed(reason: "invalid credentials"), now: t0) == nil)
    #expect(m.record(.refreshFailed(reason: "the API refused the refresh token"), now: t0 + 1) == nil)
    let alert = try #require(m.record(.loginFailed(reason: "rate limited"), now: t0 + 2))
    #expect(alert.rule == .loginFailure)
    #expect(alert.count == 3)
    #expect(alert.threshold == 3)
    #expect(alert.detail?.contains("2 failed logins, 1 failed refreshes") == true)
    #expect(alert.message.contains("rate limited"))

    let strict = monitor(.init(loginFailure: 1))
    #expect(strict.record(.loginFailed(reason: "x"), now: t0)?.threshold == 1)
  }

  @Test func rotationFailureFiresOnTheFirstOne() throws {
    let m = monitor()
    let alert = try #require(m.record(.rotationFailed(reason: "the new credentials were refused"), now: t0))
    #expect(alert.rule == .rotationFailure)
    #expect(alert.count == 1)
    #expect(alert.message.contains("the new credentials were refused"))
    #expect(m.record(.rotationFailed(reason: "again"), now: t0 + 60) == nil)
  }

  @Test func thresholdsAreConfigurable() {
    let m = monitor(.init(failedAuth: 3, forbiddenAccess: 2))
    #expect(feed(m, unauthorized(), times: 3, from: t0).first?.count == 3)
    #expect(feed(m, forbidden(), times: 2, from: t0).first?.count == 2)
  }

  @Test func otherStatusesAreNotCounted() {
    let m = monitor(.init(failedAuth: 1, forbiddenAccess: 1))
    for status in [200, 204, 400, 404, 429, 500, 502] {
      #expect(m.record(.upstreamAnswer(status: status, path: "/api/v1/401"), now: t0) == nil)
    }
    #expect(m.retainedEvents == 0)
  }

  @Test func accessLogEntriesCountByUpstreamStatusAtTheirTime() throws {
    let m = monitor(.init(failedAuth: 2))
    func entry(_ status: Int?, path: String, at ts: Double) -> AccessLogEntry {
      AccessLogEntry(
        ts: ts, requestID: "r-401", client: "127.0.0.1", method: "GET", path: path, status: status ?? 502,
        upstreamStatus: status, durationMs: 1, upstreamMs: 1, bytesIn: 0, bytesOut: 0, attempts: 1, reauth: false, error: nil)
    }
    #expect(m.record(entry(200, path: "/api/v1/401", at: t0)) == nil)
    #expect(m.record(entry(nil, path: "/api/v1/orders", at: t0)) == nil)
    #expect(m.record(entry(401, path: "/api/v1/orders", at: t0 + 1)) == nil)
    let alert = try #require(m.record(entry(401, path: "/api/v1/orders", at: t0 + 2)))
    #expect(alert.time == t0 + 2)
    #expect(alert.topPaths == [SecurityAlert.PathCount(path: "/api/v1/orders", count: 2)])
  }

  @Test func topPathsAreTheMostFrequentWithoutQueryStrings() throws {
    let m = monitor()
    _ = feed(m, unauthorized("/api/v1/orders?token=SECRET"), times: 6, from: t0)
    _ = feed(m, unauthorized("/api/v1/wallet"), times: 3, from: t0 + 6)
    let alert = try #require(m.record(unauthorized("/api/v1/items"), now: t0 + 9))
    #expect(alert.topPaths.map(\.path) == ["/api/v1/orders", "/api/v1/wallet", "/api/v1/items"])
    #expect(alert.topPaths.map(\.count) == [6, 3, 1])
    #expect(!alert.message.contains("SECRET"))
    #expect(!alert.jsonBody().contains("SECRET"))
  }

  @Test func memoryStaysBoundedUnderA401Storm() {
    let m = monitor()
    // 200 000 401s inside one window: far more than the monitor keeps.
    let alerts = feed(m, unauthorized(), times: 200_000, from: t0, spacing: 0.004)
    #expect(alerts.count == 1)
    #expect(m.retainedEvents <= SecurityMonitor.sampleLimit)
    #expect(m.count(.failedAuth, now: t0 + 800) == SecurityMonitor.sampleLimit)
  }

  @Test func memoryIsReleasedAsEventsAge() {
    let m = monitor()
    _ = feed(m, unauthorized(), times: 500, from: t0, spacing: 0.1)
    _ = feed(m, forbidden(), times: 500, from: t0, spacing: 0.1)
    #expect(m.retainedEvents == 1000)
    _ = m.record(unauthorized(), now: t0 + 5000)
    _ = m.record(forbidden(), now: t0 + 5000)
    #expect(m.retainedEvents == 2)
  }

  @Test func thresholdsOutOfRangeAreClamped() {
    let m = SecurityMonitor(window: 60, thresholds: .init(failedAuth: 0, forbiddenAccess: 10_000_000), host: "h")
    #expect(m.thresholds.failedAuth == 1)
    #expect(m.thresholds.forbiddenAccess == SecurityMonitor.maxThreshold)
  }

  @Test func theIPWhitelistAnswerIsRecognisedByItsCodeNotItsText() {
    let nested = #"{"error":{"name":"ForbiddenError","code":"FORBIDDEN","message":"IP address not authorized"}}"#
    let flat = #"{"error":"forbidden","message":"IP address not authorized"}"#
    let otherCode = #"{"error":{"code":"INSUFFICIENT_SCOPE","message":"IP address not authorized"}}"#
    let messageOnly = #"{"message":"IP address not authorized"}"#
    #expect(SecurityMonitor.isIPWhitelistRefusal(status: 403, body: Array(nested.utf8)))
    #expect(SecurityMonitor.isIPWhitelistRefusal(status: 403, body: Array(flat.utf8)))
    #expect(!SecurityMonitor.isIPWhitelistRefusal(status: 403, body: Array(otherCode.utf8)))
    #expect(!SecurityMonitor.isIPWhitelistRefusal(status: 403, body: Array(messageOnly.utf8)))
    #expect(!SecurityMonitor.isIPWhitelistRefusal(status: 401, body: Array(nested.utf8)))
    #expect(!SecurityMonitor.isIPWhitelistRefusal(status: 403, body: Array("<html>".utf8)))
  }

  @Test func theAlertsJSONCarriesTheFieldsOfTheSpec() throws {
    let m = monitor()
    let alert = try #require(feed(m, forbidden(ipWhitelist: true), times: 5, from: t0).first)
    let object = try #require(try JSONSerialization.jsonObject(with: Data(alert.jsonBody().utf8)) as? [String: Any])
    #expect(object["rule"] as? String == "forbidden_access")
    #expect(object["count"] as? Int == 5)
    #expect(object["threshold"] as? Int == 5)
    #expect(object["window"] as? String == "15m")
    #expect(object["window_seconds"] as? Int == 900)
    #expect(object["time"] as? String == "2026-11-29T10:00:04.000Z")
    #expect(object["host"] as? String == "proxy-1")
    #expect(object["ip_whitelist"] as? Bool == true)
    #expect((object["message"] as? String)?.contains("forbidden_access") == true)
    #expect(object["text"] as? String == object["message"] as? String)
    let paths = try #require(object["top_paths"] as? [[String: Any]])
    #expect(paths.first?["path"] as? String == "/api/v1/wallet")
  }

  @Test func durationsAreWrittenTheWayTheFlagsTakeThem() {
    #expect(SecurityAlert.formatDuration(900) == "15m")
    #expect(SecurityAlert.formatDuration(3600) == "1h")
    #expect(SecurityAlert.formatDuration(5400) == "1h30m")
    #expect(SecurityAlert.formatDuration(45) == "45s")
    #expect(SecurityAlert.formatDuration(0.5) == "500ms")
  }
}

import AuthProxy
import Foundation
import SandboxAPI
import Testing

/// /metrics (SPEC §5): Prometheus text with what operators alert on, and never a secret.
@Suite(.serialized) struct MetricsTests {
  private func value(_ text: String, _ sample: String) -> Double? {
    text.split(separator: "\n").first { $0.hasPrefix(sample + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
  }

  @Test func metricsCountRequestsLatencyTokensAndAuthFailures() throws {
    let proxy = try ProxyHarness(workers: 2)
    defer { proxy.stop() }
    for _ in 0..<5 { #expect(try proxy.get("/api/v1/echo").status == 200) }
    #expect(try proxy.get("/api/v1/status/403").status == 403)
    _ = try request(port: proxy.port, method: "POST", target: "/auth/login", body: Array("{}".utf8))
    let response = try proxy.admin("/metrics")
    #expect(response.status == 200)
    #expect(response.header("Content-Type")?.hasPrefix("text/plain") == true)
    let text = response.text
    #expect(value(text, #"authproxy_requests_total{method="GET",status_class="2xx"}"#) == 5)
    #expect(value(text, #"authproxy_requests_total{method="POST",status_class="4xx"}"#) == 1)
    #expect(value(text, "authproxy_upstream_latency_seconds_count") == 6)
    #expect(value(text, #"authproxy_upstream_latency_seconds_bucket{le="+Inf"}"#) == 6)
    #expect(value(text, #"authproxy_upstream_auth_failures_total{status="403"}"#) == 1)
    #expect(value(text, #"authproxy_logins_total{result="success"}"#) == 1)
    #expect(value(text, "authproxy_ready") == 1)
    #expect(value(text, "authproxy_in_flight_requests") == 0)
    let expiresIn = try #require(value(text, "authproxy_token_expires_in_seconds"))
    #expect(expiresIn > 3500 && expiresIn <= 3600)
    for secret in proxy.sandbox.issuedSecrets + [SandboxAPI.demoUsers[0].password] {
      #expect(!text.contains(secret))
    }
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
      #expect(line.split(separator: " ").count == 2, "malformed sample: \(line)")
    }
  }

  @Test func retriesAndReplaysAreCounted() throws {
    let proxy = try ProxyHarness()
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    proxy.sandbox.revokeAllTokens()
    #expect(try proxy.get("/api/v1/echo").status == 200)
    let text = try proxy.admin("/metrics").text
    #expect(value(text, "authproxy_reauth_total") == 1)
    #expect(value(text, "authproxy_retries_total") == 1, "the replay is a second attempt")
    #expect(value(text, #"authproxy_upstream_auth_failures_total{status="401"}"#) == 1)
  }
}

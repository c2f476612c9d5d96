import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// The live security monitor (SPEC §7) inside a running proxy: upstream 401/403 and failed
/// logins become one alert per rule per window, delivered to the sinks.
@Suite(.serialized) struct LiveMonitorTests {
  @Test func upstream401sRaiseOneFailedAuthAlertPerWindow() throws {
    let directory = temporaryDirectory()
    let alerts = directory + "/alerts.txt"
    let proxy = try ProxyHarness(flags: ["alert-401-threshold": "3", "alert-command": "cat >> \(alerts); echo >> \(alerts)"])
    defer { proxy.stop() }
    for _ in 0..<4 { #expect(try proxy.get("/api/v1/status/401").status == 401) }
    #expect(eventually { ((try? String(contentsOfFile: alerts, encoding: .utf8)) ?? "").contains("failed_auth") })
    for _ in 0..<4 { #expect(try proxy.get("/api/v1/status/401").status == 401) }
    let metrics = try proxy.admin("/metrics").text
    #expect(metrics.contains(#"authproxy_alerts_total{rule="failed_auth"} 1"#), "one alert per rule per window")
    #expect(proxy.logs.all.contains { $0.contains("failed_auth") })
    let delivered = try String(contentsOfFile: alerts, encoding: .utf8)
    #expect(delivered.components(separatedBy: "failed_auth").count - 1 >= 1)
    for secret in proxy.sandbox.issuedSecrets { #expect(!delivered.contains(secret)) }
  }

  @Test func failedLoginsRaiseALoginFailureAlertToTheWebhook() throws {
    let receiver = try webhookReceiver(status: 204)
    defer { receiver.stop() }
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    sandbox.failLogins(.ipNotWhitelisted)
    let proxy = try ProxyHarness(
      flags: ["alert-login-failure-threshold": "2", "alert-webhook": "\(receiver.url("/hook"))"], sandbox: sandbox)
    defer { proxy.stop() }
    #expect(eventually(timeout: 10) { receiver.requests.map(\.bodyText).contains { $0.contains("login_failure") } })
    let body = try #require(receiver.requests.map(\.bodyText).first { $0.contains("login_failure") })
    let json = try #require((try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any])
    #expect(json["rule"] as? String == "login_failure")
    #expect(json["threshold"] as? Int == 2)
    #expect((json["message"] as? String)?.contains("IP address not authorized") == true)
  }
}

import Foundation
import Glibc
import Logging
import Synchronization
import Testing

@testable import AuthProxy
import TestSupport

// MARK: - Builders

private let alert = SecurityAlert(
  rule: .forbiddenAccess, count: 7, threshold: 5, windowSeconds: 900, time: 1_795_946_400, host: "proxy-1", ipWhitelist: true,
  topPaths: [.init(path: "/api/v1/wallet", count: 7)])

/// The statuses a fake webhook receiver answers with, in turn (the last one repeats).
private final class Statuses: Sendable {
  private let queue: Mutex<[Int]>
  init(_ statuses: [Int]) { queue = Mutex(statuses) }
  func next() -> Int { queue.withLock { $0.count > 1 ? $0.removeFirst() : $0[0] } }
}

/// A webhook receiver: answers with `statuses` in turn (the last one repeats), or holds every
/// request unanswered.
private func webhookReceiver(statuses: [Int] = [200], answers: Bool = true, tls: TLSServerContext? = nil) throws
  -> LoopbackHTTPServer
{
  let statuses = Statuses(statuses)
  return try LoopbackHTTPServer(tls: tls, name: "fake-webhook") { _ in
    answers ? .init(status: statuses.next(), headers: [("Content-Type", "text/plain")], body: "ok") : nil
  }
}

/// Runs `loop` until `body` calls its `done`, or `timeout` passes; true when done was called.
private func runUntilDone(_ loop: EventLoop, timeout: Double = 20, _ body: (@escaping () -> Void) -> Void) -> Bool {
  var finished = false
  var running = false
  body {
    finished = true
    if running { loop.stop() }
  }
  if finished { return true }
  let backstop = Timer(loop: loop) { loop.stop() }
  backstop.schedule(after: timeout)
  running = true
  withExtendedLifetime(backstop) { loop.run() }
  return finished
}

private func post(_ settings: AlertWebhook.Settings, on loop: EventLoop) throws -> Result<Void, AlertDeliveryFailure>? {
  let webhook = AlertWebhook(settings: settings, multi: try CurlMulti(loop: loop))
  var outcome: Result<Void, AlertDeliveryFailure>?
  _ = runUntilDone(loop) { done in
    webhook.post(alert) { result in
      outcome = result
      done()
    }
  }
  withExtendedLifetime(webhook) {}
  return outcome
}

private func runCommand(_ settings: AlertCommand.Settings) throws -> Result<Void, AlertDeliveryFailure>? {
  let loop = try EventLoop()
  let command = AlertCommand(settings: settings, loop: loop)
  var outcome: Result<Void, AlertDeliveryFailure>?
  _ = runUntilDone(loop) { done in
    command.run(alert) { result in
      outcome = result
      done()
    }
  }
  withExtendedLifetime(command) {}
  return outcome
}

private func failureOf(_ result: Result<Void, AlertDeliveryFailure>?) -> AlertDeliveryFailure? {
  if case .failure(let failure) = result { return failure }
  return nil
}

/// Is `pid` gone (or a zombie nobody has reaped yet)?
private func isGone(_ pid: pid_t) -> Bool {
  if kill(pid, 0) != 0 && errno == ESRCH { return true }
  let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
  return stat.split(separator: ")").last?.trimmingCharacters(in: .whitespaces).hasPrefix("Z") == true
}

// MARK: - Specification

@Suite struct AlertSinksTests {

  // MARK: webhook

  @Test func webhookPostsTheAlertAsJSON() throws {
    let loop = try EventLoop()
    let receiver = try webhookReceiver()
    let outcome = try post(AlertWebhook.Settings(url: receiver.url("/hook")), on: loop)
    #expect(failureOf(outcome) == nil && outcome != nil)
    #expect(receiver.requests.count == 1)
    let request = try #require(receiver.requests.first)
    #expect(request.method == "POST")
    #expect(request.header("Content-Type") == "application/json")
    let object = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
    #expect(object["rule"] as? String == "forbidden_access")
    #expect(object["count"] as? Int == 7)
    #expect(object["threshold"] as? Int == 5)
    #expect(object["window_seconds"] as? Int == 900)
    #expect(object["time"] as? String == "2026-11-29T10:00:00.000Z")
    #expect(object["host"] as? String == "proxy-1")
    #expect(object["ip_whitelist"] as? Bool == true)
    #expect(object["message"] as? String == alert.message)
  }

  @Test func webhookRetriesAfter5xxThenSucceeds() throws {
    let loop = try EventLoop()
    let receiver = try webhookReceiver(statuses: [500, 503, 204])
    let outcome = try post(AlertWebhook.Settings(url: receiver.url("/hook"), attempts: 3, backoff: 0.01), on: loop)
    #expect(outcome != nil && failureOf(outcome) == nil)
    #expect(receiver.requests.count == 3)
    #expect(Set(receiver.requests.map(\.body)).count == 1, "every attempt sends the same alert")
  }

  @Test func webhookReportsTheFailureAfterItsAttemptsThroughTheCallback() throws {
    let loop = try EventLoop()
    let receiver = try webhookReceiver(statuses: [500])
    let log = LogCapture()
    var reported: [AlertDeliveryFailure] = []
    let sinks = try AlertSinks(
      webhook: AlertWebhook.Settings(url: receiver.url("/hook"), attempts: 3, backoff: 0.01), command: nil, loop: loop,
      logger: log.logger, onFailure: { reported.append($0) })
    var failures: [AlertDeliveryFailure]?
    #expect(
      runUntilDone(loop) { done in
        sinks.deliver(alert) {
          failures = $0
          done()
        }
      })
    withExtendedLifetime(sinks) {}
    #expect(receiver.requests.count == 3)
    #expect(reported.count == 1)
    #expect(failures == reported)
    let first = try #require(reported.first)
    #expect(first.sink == .webhook)
    #expect(first.rule == .forbiddenAccess)
    #expect(first.reason.contains("HTTP 500"))
    #expect(first.reason.contains("3 attempts"))
    #expect(log.entries.contains { $0.level == .warning && $0.text.contains("HTTP 500") })
  }

  @Test func webhookDoesNotRetryAnAnswerThatWillNotChange() throws {
    let loop = try EventLoop()
    let receiver = try webhookReceiver(statuses: [404])
    let outcome = try post(AlertWebhook.Settings(url: receiver.url("/hook"), attempts: 3, backoff: 0.01), on: loop)
    #expect(failureOf(outcome)?.reason.contains("HTTP 404") == true)
    #expect(receiver.requests.count == 1)
  }

  @Test func webhookGivesUpOnASilentServerAtItsTimeout() throws {
    let loop = try EventLoop()
    let receiver = try webhookReceiver(answers: false)
    let started = monotonicSeconds()
    let outcome = try post(AlertWebhook.Settings(url: receiver.url("/hook"), timeout: 0.3, attempts: 2, backoff: 0.01), on: loop)
    let elapsed = monotonicSeconds() - started
    let reason = try #require(failureOf(outcome)?.reason)
    #expect(reason.contains("no answer within"))
    #expect(reason.contains("2 attempts"))
    #expect(receiver.requests.count == 2)
    #expect(elapsed >= 0.6 && elapsed < 5)
  }

  @Test func webhookReportsAnUnreachableReceiver() throws {
    let (fd, port) = try ListeningSocket.bind(host: "127.0.0.1", port: 0, reusePort: false)
    close(fd)
    let loop = try EventLoop()
    let outcome = try post(
      AlertWebhook.Settings(url: "http://127.0.0.1:\(port)/hook", timeout: 2, attempts: 2, backoff: 0.01), on: loop)
    #expect(failureOf(outcome)?.sink == .webhook)
  }

  @Test func webhookFailuresNeverShowTheURLsPathOrQuery() throws {
    let loop = try EventLoop()
    let receiver = try webhookReceiver(statuses: [500])
    let outcome = try post(
      AlertWebhook.Settings(url: receiver.url("/services/T000/SECRET-PATH?key=SECRET-KEY"), attempts: 1), on: loop)
    let reason = try #require(failureOf(outcome)?.description)
    #expect(reason.contains("127.0.0.1"))
    #expect(!reason.contains("SECRET"))
  }

  @Test func httpsWebhookVerifiesTheReceiversCertificate() throws {
    let directory = temporaryDirectory("authproxy-alerts")
    try ThrowawayPKI.make(in: directory, caName: "alert test CA")
    let tls = try TLSServerContext(certificatePath: directory + "/server.pem", keyPath: directory + "/server-key.pem")
    let loop = try EventLoop()
    let receiver = try webhookReceiver(tls: tls)
    let url = "https://127.0.0.1:\(receiver.port)/hook"

    let untrusted = try post(AlertWebhook.Settings(url: url, attempts: 1), on: loop)
    #expect(failureOf(untrusted) != nil)
    #expect(receiver.requests.isEmpty)

    var settings = AlertWebhook.Settings(url: url, attempts: 1)
    settings.tls.caFile = directory + "/ca.pem"
    let trusted = try post(settings, on: loop)
    #expect(trusted != nil && failureOf(trusted) == nil)
    #expect(receiver.requests.count == 1)
  }

  @Test func webhookURLsAreHTTPSOrLoopbackHTTP() {
    for good in [
      "https://hooks.example.com/services/T0/B0/xyz", "http://127.0.0.1:9000/hook", "http://127.1.2.3/x", "http://[::1]:8080/",
      "http://localhost:9000/alerts", "HTTPS://EXAMPLE.COM",
    ] {
      #expect(AlertWebhook.validate(good) == nil, "\(good)")
    }
    for bad in [
      "http://example.com/hook", "http://10.0.0.1/hook", "http://127.0.0.1.evil.example/hook", "http://localhost@evil.example/",
      "http://[::2]/", "ftp://127.0.0.1/", "hooks.example.com", "https:///nohost", "https://exa mple.com/",
    ] {
      let problem = AlertWebhook.validate(bad)
      #expect(problem?.hasPrefix("--alert-webhook") == true, "\(bad)")
    }
    #expect(AlertWebhook.validate("http://example.com/SECRET")?.contains("SECRET") == false)
  }

  // MARK: command

  @Test func commandGetsTheMessageOnStdin() throws {
    let file = temporaryDirectory("authproxy-alerts") + "/alert.txt"
    let outcome = try runCommand(AlertCommand.Settings(command: "cat > '\(file)'"))
    #expect(outcome != nil && failureOf(outcome) == nil)
    #expect(try String(contentsOfFile: file, encoding: .utf8) == alert.message + "\n")
  }

  @Test func commandThatFailsIsReportedWithItsStatus() throws {
    let outcome = try runCommand(AlertCommand.Settings(command: "cat > /dev/null; exit 3"))
    let failure = try #require(failureOf(outcome))
    #expect(failure.sink == .command)
    #expect(failure.reason.contains("exit status 3"))
  }

  @Test func commandStillRunningAtTheTimeoutIsKilledWithWhatItStarted() throws {
    let pidFile = temporaryDirectory("authproxy-alerts") + "/pid"
    let started = monotonicSeconds()
    let outcome = try runCommand(
      AlertCommand.Settings(command: "sleep 30 & echo $! > '\(pidFile)'; wait", timeout: 0.3))
    let elapsed = monotonicSeconds() - started
    let failure = try #require(failureOf(outcome))
    #expect(failure.reason.contains("killed"))
    #expect(elapsed >= 0.3 && elapsed < 5)
    let sleeper = try #require(pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
    // SIGKILL went to the whole group; give the kernel a moment to finish the grandchild.
    var gone = isGone(sleeper)
    for _ in 0..<200 where !gone {
      usleep(10_000)
      gone = isGone(sleeper)
    }
    #expect(gone)
  }

  @Test func commandThatCannotStartIsReported() throws {
    let outcome = try runCommand(AlertCommand.Settings(command: "/nonexistent/alert-tool"))
    #expect(failureOf(outcome)?.reason.contains("exit status 127") == true)
  }

  @Test func commandDoesNotInheritTheProxysSecrets() throws {
    let file = temporaryDirectory("authproxy-alerts") + "/env.txt"
    let environment = [
      "PATH": "/usr/bin:/bin", "HOME": "/tmp", "API_USERNAME": "integration", "API_PASSWORD": "hunter2-secret",
      "ENCRYPTION_KEY": "key-secret", "VAULT_TOKEN": "vault-secret", "AUTHPROXY_TOKEN_STORE": "redis://:redis-secret@r:6379",
    ]
    let settings = try AlertSettings.load(flags: ["alert-command": "env > '\(file)'"], environment: environment).get()
    let command = try #require(settings.command)
    let outcome = try runCommand(command)
    #expect(failureOf(outcome) == nil)
    let seen = try String(contentsOfFile: file, encoding: .utf8)
    #expect(seen.contains("HOME=/tmp"))
    #expect(!seen.contains("secret"))
  }

  // MARK: all sinks

  @Test func theLogAlwaysGetsTheAlertEvenWithNoOtherSink() throws {
    let loop = try EventLoop()
    let log = LogCapture()
    let sinks = try AlertSinks(webhook: nil, command: nil, loop: loop, logger: log.logger)
    var failures: [AlertDeliveryFailure]?
    sinks.deliver(alert) { failures = $0 }
    #expect(failures == [])
    let line = try #require(log.entries.first { $0.level == .error })
    #expect(line.text.contains("forbidden_access"))
    #expect(line.text.contains("ip_whitelist"))
  }

  @Test func everyConfiguredSinkGetsTheAlert() throws {
    let loop = try EventLoop()
    let receiver = try webhookReceiver()
    let file = temporaryDirectory("authproxy-alerts") + "/alert.txt"
    let sinks = try AlertSinks(
      webhook: AlertWebhook.Settings(url: receiver.url("/hook")), command: AlertCommand.Settings(command: "cat > '\(file)'"),
      loop: loop, logger: LogCapture().logger)
    var failures: [AlertDeliveryFailure]?
    #expect(
      runUntilDone(loop) { done in
        sinks.deliver(alert) {
          failures = $0
          done()
        }
      })
    #expect(failures == [])
    #expect(receiver.requests.count == 1)
    #expect(try String(contentsOfFile: file, encoding: .utf8).contains("forbidden_access"))
    #expect(sinks.pending == 0)
  }

  // MARK: settings

  @Test func settingsDefaultToTheSpec() throws {
    let settings = try AlertSettings.load(flags: [:], environment: [:]).get()
    #expect(settings.window == 900)
    #expect(settings.thresholds == SecurityMonitor.Thresholds(failedAuth: 10, forbiddenAccess: 5, loginFailure: 3, rotationFailure: 1))
    #expect(settings.webhook == nil)
    #expect(settings.command == nil)
  }

  @Test func settingsTakeVariablesAndAFlagBeatsItsVariable() throws {
    let environment = ["AUTHPROXY_ALERT_401_THRESHOLD": "20", "AUTHPROXY_ALERT_WINDOW": "1h", "AUTHPROXY_ALERT_403_THRESHOLD": "9"]
    let settings = try AlertSettings.load(flags: ["alert-403-threshold": "2"], environment: environment).get()
    #expect(settings.thresholds.failedAuth == 20)
    #expect(settings.thresholds.forbiddenAccess == 2)
    #expect(settings.window == 3600)
  }

  @Test func settingsReportEveryProblemNamingItsFlag() {
    let result = AlertSettings.load(
      flags: ["alert-window": "soon", "alert-401-threshold": "0", "alert-webhook": "http://example.com/hook"],
      environment: ["AUTHPROXY_ALERT_LOGIN_FAILURE_THRESHOLD": "many"])
    guard case .failure(let errors) = result else {
      Issue.record("bad alert flags were accepted")
      return
    }
    #expect(errors.problems.count == 4)
    #expect(errors.problems.contains { $0.hasPrefix("--alert-window") })
    #expect(errors.problems.contains { $0.hasPrefix("--alert-401-threshold") })
    #expect(errors.problems.contains { $0.hasPrefix("--alert-webhook") })
    #expect(errors.problems.contains { $0.hasPrefix("AUTHPROXY_ALERT_LOGIN_FAILURE_THRESHOLD") })
  }
}

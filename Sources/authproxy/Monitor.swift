import ArgumentParser
import AuthProxy
import Glibc

/// `--help` text for a monitor flag: its help, default and variable, from the shared table.
private func monitorHelp(_ name: String) -> ArgumentHelp {
  let specs = AlertSettings.flags(window: AlertSettings.monitorWindowFlag) + Monitor.ownFlags
  guard let spec = specs.first(where: { $0.name == name }) else { return ArgumentHelp("") }
  let fallback = spec.defaultValue.map { "default: \($0); " } ?? ""
  return ArgumentHelp("\(spec.help) (\(fallback)env: \(spec.environmentVariable))")
}

struct Monitor: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Scan an access log for bursts of upstream 401/403; run the alert sinks when a threshold is crossed.",
    discussion: """
      Reads the JSON-lines access log (and FILE.1 / FILE.1.gz when present, through gzip -dc), counts \
      the lines of the window ending now: upstream 401s (failed_auth), upstream 403s (forbidden_access), \
      calls refused by route rules (route_denied), \
      answers the proxy made itself by error code; prints the counts with their thresholds and the top \
      paths and clients behind the 401s and 403s. Counts by the upstream_status field only, never by \
      text. Malformed lines are counted and skipped.
      When a threshold is reached, the alert goes to the log (stderr), --alert-webhook and --alert-command.
      Exit codes: 0 quiet; 1 alerted; 64 bad flags or an unreadable access log.
      Example (cron, every 15 minutes): authproxy monitor --access-log /var/log/authproxy/access.log --window 15m
      """)

  static let ownFlags = [
    FlagSpec.named("access-log", help: "The JSON-lines access log to scan (required), or - for stdin."),
    FlagSpec.named("now", help: "End of the window, RFC 3339 (for incident review and tests; default: the current time)."),
  ]

  @Option(name: .customLong("access-log"), parsing: .unconditional, help: monitorHelp("access-log")) var accessLog: String?
  @Option(name: .customLong("window"), parsing: .unconditional, help: monitorHelp("window")) var window: String?
  @Option(name: .customLong("alert-401-threshold"), parsing: .unconditional, help: monitorHelp("alert-401-threshold"))
  var threshold401: String?
  @Option(name: .customLong("alert-403-threshold"), parsing: .unconditional, help: monitorHelp("alert-403-threshold"))
  var threshold403: String?
  @Option(name: .customLong("alert-route-denied-threshold"), parsing: .unconditional, help: monitorHelp("alert-route-denied-threshold"))
  var thresholdRouteDenied: String?
  @Option(name: .customLong("alert-webhook"), parsing: .unconditional, help: monitorHelp("alert-webhook")) var webhook: String?
  @Option(name: .customLong("alert-command"), parsing: .unconditional, help: monitorHelp("alert-command")) var command: String?
  @Option(name: .customLong("now"), parsing: .unconditional, help: monitorHelp("now")) var now: String?

  func run() throws {
    let environment = processEnvironment()
    var problems: [String] = []
    var given: [String: String] = [:]
    for case (let name, let value?) in [
      ("window", window), ("alert-401-threshold", threshold401), ("alert-403-threshold", threshold403),
      ("alert-route-denied-threshold", thresholdRouteDenied), ("alert-webhook", webhook), ("alert-command", command),
    ] {
      given[name] = value
    }
    var settings = AlertSettings()
    switch AlertSettings.load(flags: given, environment: environment, window: AlertSettings.monitorWindowFlag) {
    case .success(let loaded): settings = loaded
    case .failure(let errors): problems += errors.problems
    }
    let logPath = accessLog ?? environment["AUTHPROXY_ACCESS_LOG"]
    if logPath == nil || logPath == "" {
      problems.append("--access-log is required: the JSON-lines access log to scan, e.g. --access-log /var/log/authproxy/access.log")
    }
    var end = SystemClock().now()
    if let text = now ?? environment["AUTHPROXY_NOW"] {
      if let parsed = RFC3339.parse(text) {
        end = parsed
      } else {
        problems.append("--now: '\(text)' is not an RFC 3339 time; write it like 2026-11-29T10:00:00Z")
      }
    }
    guard problems.isEmpty, let logPath else {
      for problem in problems { printError("authproxy monitor: \(problem)") }
      throw ExitCode(64)
    }

    let scan: AccessLogScan
    do {
      scan = try AccessLogScan.scan(path: logPath, window: settings.window, now: end)
    } catch {
      printError("authproxy monitor: \(error.description)")
      throw ExitCode(64)
    }
    printOut(scan.report(thresholds: settings.thresholds))
    let alerts = scan.alerts(thresholds: settings.thresholds)
    guard !alerts.isEmpty else { return }
    for alert in alerts { printOut("ALERT \(alert.rule.rawValue): \(alert.message)") }
    deliver(alerts, settings: settings)
    throw ExitCode(1)
  }

  /// Runs the sinks on a loop of our own until every one finished (each has its own timeout).
  private func deliver(_ alerts: [SecurityAlert], settings: AlertSettings) {
    let logger = DiagnosticLog.bootstrap(level: .info, format: .text)
    do {
      let loop = try EventLoop()
      let sinks = try AlertSinks(webhook: settings.webhook, command: settings.command, loop: loop, logger: logger)
      var waiting = alerts.count
      var running = false
      for alert in alerts {
        sinks.deliver(alert) { _ in
          waiting -= 1
          if waiting == 0 && running { loop.stop() }
        }
      }
      guard waiting > 0 else { return }
      // A backstop only: the webhook (3 attempts of 5s) and the command (10s) end well before.
      let backstop = Timer(loop: loop) {
        logger.warning("alert sinks still busy after 60s; giving up")
        loop.stop()
      }
      backstop.schedule(after: 60)
      running = true
      // The sinks and the backstop must live while the loop runs their callbacks.
      withExtendedLifetime((sinks, backstop)) { loop.run() }
    } catch {
      printError("authproxy monitor: cannot run the alert sinks: \(error.description)")
    }
  }
}

/// The security monitor's flags (SPEC §7), parsed and validated once: the window, the
/// thresholds and the sinks. Shared by `serve` (live monitor) and `monitor` (log scan).
public struct AlertSettings: Sendable, Equatable {
  public var window = 900.0
  public var thresholds = SecurityMonitor.Thresholds()
  public var webhook: AlertWebhook.Settings?
  public var command: AlertCommand.Settings?

  public init() {}

  /// The alert flags, for `--help` and the variables. The window flag is `alert-window` for
  /// `serve`; `monitor` names its own.
  public static func flags(window: FlagSpec = AlertSettings.alertWindowFlag) -> [FlagSpec] {
    [
      window,
      FlagSpec(
        name: "alert-401-threshold", defaultValue: "10", help: "failed_auth: alert when this many upstream 401s fall in the window."),
      FlagSpec(
        name: "alert-403-threshold", defaultValue: "5",
        help:
          "forbidden_access: alert when this many upstream 403s fall in the window (the alert says when the API refused this host's IP address)."
      ),
      FlagSpec(
        name: "alert-login-failure-threshold", defaultValue: "3",
        help: "login_failure: alert when this many logins or refreshes fail in the window."),
      FlagSpec(
        name: "alert-route-denied-threshold", defaultValue: "10",
        help: "route_denied: alert when this many calls refused by --allow-route or an app's routes fall in the window."),
      FlagSpec(
        name: "alert-webhook", defaultValue: nil,
        help:
          "POST each alert as JSON (rule, count, threshold, window, time, host, message) to this https:// URL (http:// only to loopback); 5s timeout, 3 attempts."
      ),
      FlagSpec(
        name: "alert-command", defaultValue: nil,
        help:
          "Run this shell command for each alert, with the message on stdin (e.g. mail -s \"authproxy alert\" security@example.com); killed after 10s."
      ),
    ]
  }

  public static let alertWindowFlag = FlagSpec(
    name: "alert-window", defaultValue: "15m", help: "Sliding window of the security monitor; one alert per rule per window.")

  /// `authproxy monitor --window`: the scan's window, ending now.
  public static let monitorWindowFlag = FlagSpec(
    name: "window", defaultValue: "1h", help: "How far back from now (or --now) to count.")

  /// Builds the settings from `flags` (name without dashes → value), then `AUTHPROXY_*`
  /// variables, then defaults. Every problem names its flag. The command's environment is the
  /// process's minus the secrets (`AlertCommand.childEnvironment`).
  public static func load(
    flags given: [String: String], environment: [String: String], window windowFlag: FlagSpec = AlertSettings.alertWindowFlag
  ) -> Result<AlertSettings, ConfigErrors> {
    let specs = Self.flags(window: windowFlag)
    var problems: [String] = []
    var settings = AlertSettings()
    func value(_ name: String) -> (text: String, source: String)? {
      if let text = given[name] { return (text, "--\(name)") }
      guard let spec = specs.first(where: { $0.name == name }) else { return nil }
      if let text = environment[spec.environmentVariable] { return (text, "\(spec.environmentVariable) (--\(name))") }
      return spec.defaultValue.map { ($0, "--\(name)") }
    }
    func threshold(_ name: String) -> Int? {
      guard let (text, source) = value(name) else { return nil }
      guard let n = Int(text), (1...SecurityMonitor.maxThreshold).contains(n) else {
        problems.append("\(source): '\(text)' is not a count from 1 to \(SecurityMonitor.maxThreshold)")
        return nil
      }
      return n
    }
    if let (text, source) = value(windowFlag.name) {
      if let seconds = Units.duration(text), seconds >= 1 {
        settings.window = seconds
      } else {
        problems.append("\(source): '\(text)' is not a duration of 1s or more; write it like 15m or 1h")
      }
    }
    if let n = threshold("alert-401-threshold") { settings.thresholds.failedAuth = n }
    if let n = threshold("alert-403-threshold") { settings.thresholds.forbiddenAccess = n }
    if let n = threshold("alert-login-failure-threshold") { settings.thresholds.loginFailure = n }
    if let n = threshold("alert-route-denied-threshold") { settings.thresholds.routeDenied = n }
    if let (url, source) = value("alert-webhook"), !url.isEmpty {
      if let problem = AlertWebhook.validate(url, flag: source) {
        problems.append(problem)
      } else {
        settings.webhook = AlertWebhook.Settings(url: url)
      }
    }
    if let (command, _) = value("alert-command"), !command.trimmingASCIIWhitespace().isEmpty {
      settings.command = AlertCommand.Settings(command: command, environment: AlertCommand.childEnvironment(from: environment))
    }
    return problems.isEmpty ? .success(settings) : .failure(ConfigErrors(problems: problems))
  }

  /// A live monitor with these window and thresholds.
  public func makeMonitor(host: String = SecurityAlert.hostName()) -> SecurityMonitor {
    SecurityMonitor(window: window, thresholds: thresholds, host: host)
  }
}

extension FlagSpec {
  /// A flag described outside this module (the `monitor` command's own flags).
  public static func named(_ name: String, defaultValue: String? = nil, help: String) -> FlagSpec {
    FlagSpec(name: name, defaultValue: defaultValue, help: help)
  }
}

/// The `--alert-command` sink: runs `/bin/sh -c CMD` with the alert's message on standard
/// input (e.g. `mail -s "authproxy alert" security@example.com`). The loop never waits for it:
/// a `Timer` polls the child (waitpid WNOHANG), and a child still running at the timeout is
/// killed with its process group. Its standard output goes to our standard error, never into
/// an access log on stdout.
public final class AlertCommand {
  public struct Settings: Sendable, Equatable {
    public var command: String
    /// A command still running after this long is killed and reported as failed.
    public var timeout: Double = 10
    /// The child's whole environment (see `childEnvironment(from:)`).
    public var environment: [String: String] = ["PATH": "/usr/local/bin:/usr/bin:/bin"]

    public init(command: String, timeout: Double = 10, environment: [String: String] = ["PATH": "/usr/local/bin:/usr/bin:/bin"]) {
      self.command = command
      self.timeout = timeout
      self.environment = environment
    }
  }

  /// More commands than this at once are refused (alerts are rare; a pile-up means the command hangs).
  public static let maxRunning = 4

  public let settings: Settings
  private let loop: EventLoop
  private var runs: [ObjectIdentifier: CommandRun] = [:]

  public init(settings: Settings, loop: EventLoop) {
    self.settings = settings
    self.loop = loop
  }

  /// Commands still running.
  public var pending: Int { runs.count }

  /// Runs the command with `message` on stdin; `completion` runs on the loop when it exited
  /// (success only for exit status 0), was killed at the timeout, or could not start.
  public func run(_ alert: SecurityAlert, completion: @escaping (Result<Void, AlertDeliveryFailure>) -> Void) {
    func fail(_ reason: String) {
      completion(.failure(AlertDeliveryFailure(sink: .command, rule: alert.rule, reason: reason)))
    }
    guard runs.count < Self.maxRunning else {
      fail("\(runs.count) earlier alert commands are still running")
      return
    }
    let child: ChildProcess
    do {
      child = try ChildProcess(
        arguments: ["/bin/sh", "-c", settings.command], environment: settings.environment,
        input: .bytes(Array((alert.message + "\n").utf8)), outputToStandardError: true)
    } catch {
      fail(error.description)
      return
    }
    let run = CommandRun(child: child, loop: loop, timeout: settings.timeout)
    let id = ObjectIdentifier(run)
    runs[id] = run
    run.onExit = { [unowned self] exit, killed in
      self.runs[id] = nil
      if killed {
        fail("still running after \(SecurityAlert.formatDuration(self.settings.timeout)); killed")
      } else if exit.isSuccess {
        completion(.success(()))
      } else {
        fail("the command ended with \(exit)")
      }
    }
    run.start()
  }

  /// The environment for the command: the process's own, minus the secrets the proxy reads
  /// from it (the API password, the encryption key, the Vault token, `AUTHPROXY_*` values that
  /// may carry a Redis password).
  public static func childEnvironment(from environment: [String: String]) -> [String: String] {
    let secret: Set<String> = ["API_PASSWORD", "ENCRYPTION_KEY", "VAULT_TOKEN"]
    return environment.filter { !secret.contains($0.key) && !$0.key.hasPrefix("AUTHPROXY_") }
  }
}

/// One running alert command, watched by a polling timer until it is reaped.
private final class CommandRun {
  let child: ChildProcess
  private let timeout: Double
  private var timer: Timer!
  private var interval = 0.01
  private var started = 0.0
  private var killed = false
  var onExit: ((ChildProcess.Exit, Bool) -> Void)?

  init(child: ChildProcess, loop: EventLoop, timeout: Double) {
    self.child = child
    self.timeout = timeout
    timer = Timer(loop: loop) { [unowned self] in self.check() }
  }

  func start() {
    started = monotonicSeconds()
    timer.schedule(after: interval)
  }

  private func check() {
    if let exit = child.poll() {
      let callback = onExit
      onExit = nil
      callback?(exit, killed)
      return
    }
    if !killed && monotonicSeconds() - started >= timeout {
      killed = true
      child.kill()
      interval = 0.01
    }
    // Quick at first (most commands take milliseconds), then at most four times a second.
    interval = min(interval * 2, 0.25)
    timer.schedule(after: killed ? 0.01 : min(interval, max(0.001, started + timeout - monotonicSeconds())))
  }
}

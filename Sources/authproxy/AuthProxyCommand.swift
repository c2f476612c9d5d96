import ArgumentParser
import AuthProxy
import Glibc
import Logging

@main
struct AuthProxyCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "authproxy",
    abstract: "Authenticating egress reverse proxy: logs in to the API, keeps a valid token, adds it to every request.",
    subcommands: [Serve.self, Dev.self, CheckCredentials.self, Seal.self, Unseal.self, Monitor.self, Version.self],
    defaultSubcommand: nil)

  /// ArgumentParser's own `main`, except that an error's text is scrubbed before it is shown:
  /// the parser echoes what it could not place (`serve https://user:password@host`), and
  /// a value that can hold a secret is never shown (issue 17).
  static func main() {
    do {
      var command = try parseAsRoot()
      try command.run()
    } catch {
      let code = exitCode(for: error)
      let message = fullMessage(for: error)
      if code == .success {
        if !message.isEmpty { printOut(message) }
      } else if !message.isEmpty {
        printError(message)
      }
      Glibc.exit(code.rawValue)
    }
  }
}

/// The variables whose values are secrets: never shown, whatever message they end up in.
let secretVariables = ["API_PASSWORD", "ENCRYPTION_KEY", "VAULT_TOKEN"]

/// Writes one line to standard error (fd 2: the C `stderr` global is not concurrency-safe),
/// scrubbed of URL user information and queries and of the secret variables' values: what is
/// written here is what operators paste into tickets.
func printError(_ line: String) {
  let environment = processEnvironment()
  let scrubbed = Redaction.scrub(line, secrets: secretVariables.compactMap { environment[$0] })
  let bytes = Array((scrubbed + "\n").utf8)
  bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}

/// Writes text to standard output at once (unbuffered: `authproxy dev` prints while it runs).
func printOut(_ text: String) {
  let bytes = Array((text + "\n").utf8)
  bytes.withUnsafeBytes { _ = write(1, $0.baseAddress, $0.count) }
}

/// The process environment, read once here and handed to the configuration.
func processEnvironment() -> [String: String] {
  var result: [String: String] = [:]
  var pointer = environ
  while let entry = pointer.pointee {
    let text = String(cString: entry)
    if let equals = text.firstIndex(of: "=") {
      result[String(text[..<equals])] = String(text[text.index(after: equals)...])
    }
    pointer += 1
  }
  return result
}

func makeLogger(_ config: ServeConfig) -> Logger {
  DiagnosticLog.bootstrap(level: config.logLevel, format: config.logFormat)
}

/// Runs the proxy until SIGTERM/SIGINT, then exits 0.
func runUntilSignalled(
  config: ServeConfig, credentials: Credentials, loader: CredentialLoader? = nil, logger: Logger, banner: (ProxyRuntime) -> Void
) throws -> Never {
  let runtime: ProxyRuntime
  do {
    runtime = try ProxyRuntime(config: config, credentials: credentials, loader: loader, logger: logger, watchSignals: true)
  } catch {
    printError("authproxy: \(error.description)")
    Glibc.exit(error.exitCode)
  }
  banner(runtime)
  runtime.wait()
  logger.info("stopped")
  Glibc.exit(0)
}

struct Version: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Print the version.")
  func run() { print("authproxy \(AuthProxyVersion.current)") }
}

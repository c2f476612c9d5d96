import ArgumentParser
import AuthProxy
import Glibc

struct CheckCredentials: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "check-credentials",
    abstract: "Log in to the API with the configured credentials and report the result.",
    discussion: """
      Takes serve's upstream, TLS, auth-path and credential flags. Exit 0 when the login succeeds; \
      1 with the API's reason when it refuses (invalid credentials, IP address not authorized, \
      rate limited); 69 when the API or the credential source cannot be reached; 64 for bad flags.

      It does not log out unless --logout is given: a logout revokes EVERY token of the client, \
      including the tokens of every running proxy that uses the same API client.
      """)

  @OptionGroup var flags: ServeFlags

  @Flag(help: "Log out after the login. This revokes every token of the client, those of running proxies too.")
  var logout = false

  func run() throws {
    let environment = processEnvironment()
    let config = flags.config(environment: environment)
    // A CA file that is not PEM is a usage error here too, not an unreachable API.
    if let problem = StartupError.checkTLSFiles(config.tls) {
      printError("authproxy: \(problem.description)")
      Glibc.exit(problem.exitCode)
    }
    let credentials = loadCredentials(config, environment: environment)
    let result: Result<CredentialCheck.Outcome, TokenFailure>
    do {
      result = try CredentialCheck.run(config: config, credentials: credentials, logout: logout)
    } catch {
      // No event loop or curl handle: the system lacks something (descriptors, memory).
      printError("authproxy: \(error.description)")
      Glibc.exit(69)
    }
    switch result {
    case .success(let outcome):
      printOut(
        "ok: logged in as '\(credentials.username)' (client \(outcome.clientID ?? "not named by the API")); token valid until \(RFC3339.format(outcome.accessExpiresAt, milliseconds: false))"
      )
      if let logout = outcome.logout {
        switch logout {
        case .success: printOut("logged out: every token of \(outcome.clientID.map { "client \($0)" } ?? "the client") is revoked")
        case .failure(let failure):
          printError("authproxy: the login worked but the logout failed: \(failure.description)")
          Glibc.exit(1)
        }
      }
    case .failure(let failure):
      printError("authproxy: login refused: \(failure.description)")
      if case .unreachable = failure { Glibc.exit(69) }
      Glibc.exit(1)
    }
  }
}

/// The credentials of the configured source, or exit: 69 when the source cannot be reached
/// (Vault down), 64 when it is misconfigured (SPEC §8).
func loadCredentials(_ config: ServeConfig, environment: [String: String]) -> Credentials {
  do {
    return try CredentialSource.load(config.credentials, environment: environment, database: config.database)
  } catch {
    printError("authproxy: \(error.description)")
    Glibc.exit(error.kind == .unreachable ? 69 : 64)
  }
}

import ArgumentParser
import AuthProxy
import Glibc

/// `--help` text for a serve flag: its help, default and variable, from the shared table.
func flagHelp(_ name: String) -> ArgumentHelp {
  guard let spec = ServeConfig.flags.first(where: { $0.name == name }) else { return ArgumentHelp("") }
  let fallback = spec.defaultValue.map { "default: \($0); " } ?? ""
  return ArgumentHelp("\(spec.help) (\(fallback)env: \(spec.environmentVariable))")
}

/// The flags `serve` and `dev` share, as optional strings: defaults and variables are applied
/// by `ServeConfig.load`, so that a flag beats its variable and every problem is reported at once.
struct ServeFlags: ParsableArguments {
  @Option(name: .customLong("listen"), parsing: .unconditional, help: flagHelp("listen")) var listen: String?
  @Option(name: .customLong("admin-listen"), parsing: .unconditional, help: flagHelp("admin-listen")) var adminListen: String?
  @Option(name: .customLong("upstream"), parsing: .unconditional, help: flagHelp("upstream")) var upstream: String?
  @Option(name: .customLong("ca-file"), parsing: .unconditional, help: flagHelp("ca-file")) var caFile: String?
  @Option(name: .customLong("pin-sha256"), parsing: .unconditional, help: flagHelp("pin-sha256")) var pinSHA256: String?
  @Option(name: .customLong("client-cert"), parsing: .unconditional, help: flagHelp("client-cert")) var clientCert: String?
  @Option(name: .customLong("client-key"), parsing: .unconditional, help: flagHelp("client-key")) var clientKey: String?
  @Option(name: .customLong("credentials"), parsing: .unconditional, help: flagHelp("credentials")) var credentials: String?
  @Option(name: .customLong("credentials-poll"), parsing: .unconditional, help: flagHelp("credentials-poll")) var credentialsPoll: String?
  @Option(name: .customLong("database-url"), parsing: .unconditional, help: flagHelp("database-url")) var databaseURL: String?
  @Option(name: .customLong("database-password-file"), parsing: .unconditional, help: flagHelp("database-password-file"))
  var databasePasswordFile: String?
  @Option(name: .customLong("database-ca-file"), parsing: .unconditional, help: flagHelp("database-ca-file")) var databaseCAFile: String?
  @Option(name: .customLong("database-timeout"), parsing: .unconditional, help: flagHelp("database-timeout")) var databaseTimeout: String?
  @Option(name: .customLong("user-agent"), parsing: .unconditional, help: flagHelp("user-agent")) var userAgent: String?
  @Option(name: .customLong("connect-timeout"), parsing: .unconditional, help: flagHelp("connect-timeout")) var connectTimeout: String?
  @Option(name: .customLong("timeout"), parsing: .unconditional, help: flagHelp("timeout")) var timeout: String?
  @Option(name: .customLong("refresh-before"), parsing: .unconditional, help: flagHelp("refresh-before")) var refreshBefore: String?
  @Option(name: .customLong("access-log"), parsing: .unconditional, help: flagHelp("access-log")) var accessLog: String?
  @Option(name: .customLong("access-log-buffer"), parsing: .unconditional, help: flagHelp("access-log-buffer"))
  var accessLogBuffer: String?
  @Option(name: .customLong("max-connections"), parsing: .unconditional, help: flagHelp("max-connections"))
  var maxConnections: String?
  @Option(name: .customLong("workers"), parsing: .unconditional, help: flagHelp("workers")) var workers: String?
  @Option(name: .customLong("max-body"), parsing: .unconditional, help: flagHelp("max-body")) var maxBody: String?
  @Option(name: .customLong("drain-timeout"), parsing: .unconditional, help: flagHelp("drain-timeout")) var drainTimeout: String?
  @Option(name: .customLong("header-timeout"), parsing: .unconditional, help: flagHelp("header-timeout")) var headerTimeout: String?
  @Option(name: .customLong("retries"), parsing: .unconditional, help: flagHelp("retries")) var retries: String?
  @Option(name: .customLong("retry-delay"), parsing: .unconditional, help: flagHelp("retry-delay")) var retryDelay: String?
  @Option(name: .customLong("max-upstream-connections"), parsing: .unconditional, help: flagHelp("max-upstream-connections"))
  var maxUpstreamConnections: String?
  @Option(name: .customLong("max-upstream-concurrency"), parsing: .unconditional, help: flagHelp("max-upstream-concurrency"))
  var maxUpstreamConcurrency: String?
  @Option(name: .customLong("rate-limit"), parsing: .unconditional, help: flagHelp("rate-limit")) var rateLimit: String?
  @Option(name: .customLong("rate-burst"), parsing: .unconditional, help: flagHelp("rate-burst")) var rateBurst: String?
  @Option(name: .customLong("reuse-window"), parsing: .unconditional, help: flagHelp("reuse-window")) var reuseWindow: String?
  @Option(name: .customLong("allow-cidr"), parsing: .unconditional, help: flagHelp("allow-cidr")) var allowCIDR: String?
  @Option(name: .customLong("token-store"), parsing: .unconditional, help: flagHelp("token-store")) var tokenStore: String?
  @Option(name: .customLong("token-store-password-file"), parsing: .unconditional, help: flagHelp("token-store-password-file"))
  var tokenStorePasswordFile: String?
  @Option(name: .customLong("token-store-ca-file"), parsing: .unconditional, help: flagHelp("token-store-ca-file"))
  var tokenStoreCAFile: String?
  @Option(name: .customLong("token-store-client-cert"), parsing: .unconditional, help: flagHelp("token-store-client-cert"))
  var tokenStoreClientCert: String?
  @Option(name: .customLong("token-store-client-key"), parsing: .unconditional, help: flagHelp("token-store-client-key"))
  var tokenStoreClientKey: String?
  @Option(name: .customLong("token-store-timeout"), parsing: .unconditional, help: flagHelp("token-store-timeout"))
  var tokenStoreTimeout: String?
  @Option(name: .customLong("log-level"), parsing: .unconditional, help: flagHelp("log-level")) var logLevel: String?
  @Option(name: .customLong("log-format"), parsing: .unconditional, help: flagHelp("log-format")) var logFormat: String?
  @Option(name: .customLong("login-path"), parsing: .unconditional, help: flagHelp("login-path")) var loginPath: String?
  @Option(name: .customLong("refresh-path"), parsing: .unconditional, help: flagHelp("refresh-path")) var refreshPath: String?
  @Option(name: .customLong("logout-path"), parsing: .unconditional, help: flagHelp("logout-path")) var logoutPath: String?
  @Option(name: .customLong("api-prefix"), parsing: .unconditional, help: flagHelp("api-prefix")) var apiPrefix: String?
  @Flag(name: .customLong("logout-on-exit"), help: flagHelp("logout-on-exit")) var logoutOnExit = false
  @Option(name: .customLong("apps-file"), parsing: .unconditional, help: flagHelp("apps-file")) var appsFile: String?
  @Option(name: .customLong("allow-route"), parsing: .unconditional, help: flagHelp("allow-route")) var allowRoute: String?
  @Option(name: .customLong("listen-mode"), parsing: .unconditional, help: flagHelp("listen-mode")) var listenMode: String?
  @Option(name: .customLong("alert-route-denied-threshold"), parsing: .unconditional, help: flagHelp("alert-route-denied-threshold"))
  var alertRouteDeniedThreshold: String?
  @Option(name: .customLong("alert-window"), parsing: .unconditional, help: flagHelp("alert-window")) var alertWindow: String?
  @Option(name: .customLong("alert-401-threshold"), parsing: .unconditional, help: flagHelp("alert-401-threshold"))
  var alert401Threshold: String?
  @Option(name: .customLong("alert-403-threshold"), parsing: .unconditional, help: flagHelp("alert-403-threshold"))
  var alert403Threshold: String?
  @Option(name: .customLong("alert-login-failure-threshold"), parsing: .unconditional, help: flagHelp("alert-login-failure-threshold"))
  var alertLoginFailureThreshold: String?
  @Option(name: .customLong("alert-webhook"), parsing: .unconditional, help: flagHelp("alert-webhook")) var alertWebhook: String?
  @Option(name: .customLong("alert-command"), parsing: .unconditional, help: flagHelp("alert-command")) var alertCommand: String?

  var given: [String: String] {
    let all: [(String, String?)] = [
      ("listen", listen), ("admin-listen", adminListen), ("upstream", upstream), ("ca-file", caFile),
      ("pin-sha256", pinSHA256), ("client-cert", clientCert), ("client-key", clientKey), ("credentials", credentials),
      ("credentials-poll", credentialsPoll), ("database-url", databaseURL), ("database-password-file", databasePasswordFile),
      ("database-ca-file", databaseCAFile), ("database-timeout", databaseTimeout),
      ("user-agent", userAgent), ("connect-timeout", connectTimeout), ("timeout", timeout),
      ("refresh-before", refreshBefore), ("access-log", accessLog), ("access-log-buffer", accessLogBuffer),
      ("max-connections", maxConnections), ("workers", workers), ("max-body", maxBody),
      ("drain-timeout", drainTimeout), ("header-timeout", headerTimeout), ("retries", retries), ("retry-delay", retryDelay),
      ("reuse-window", reuseWindow), ("max-upstream-connections", maxUpstreamConnections),
      ("max-upstream-concurrency", maxUpstreamConcurrency), ("rate-limit", rateLimit),
      ("rate-burst", rateBurst),
      ("allow-cidr", allowCIDR), ("token-store", tokenStore), ("token-store-password-file", tokenStorePasswordFile),
      ("token-store-ca-file", tokenStoreCAFile), ("token-store-client-cert", tokenStoreClientCert),
      ("token-store-client-key", tokenStoreClientKey), ("token-store-timeout", tokenStoreTimeout), ("log-level", logLevel),
      ("log-format", logFormat),
      ("alert-window", alertWindow), ("alert-401-threshold", alert401Threshold),
      ("alert-403-threshold", alert403Threshold), ("alert-login-failure-threshold", alertLoginFailureThreshold),
      ("alert-webhook", alertWebhook), ("alert-command", alertCommand), ("login-path", loginPath), ("refresh-path", refreshPath),
      ("logout-path", logoutPath), ("api-prefix", apiPrefix),
      ("apps-file", appsFile), ("allow-route", allowRoute), ("listen-mode", listenMode),
      ("alert-route-denied-threshold", alertRouteDeniedThreshold),
    ]
    var result: [String: String] = [:]
    for case (let name, let value?) in all { result[name] = value }
    if logoutOnExit { result["logout-on-exit"] = "true" }
    return result
  }

  /// The validated configuration, or exit 64 after naming every problem.
  func config(environment: [String: String], overrides: [String: String] = [:]) -> ServeConfig {
    switch ServeConfig.load(flags: given.merging(overrides) { mine, _ in mine }, environment: environment) {
    case .success(let config): return config
    case .failure(let errors):
      for problem in errors.problems { printError("authproxy: \(problem)") }
      Glibc.exit(64)
    }
  }
}

struct Serve: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run the proxy.",
    discussion: "Every flag has an AUTHPROXY_<FLAG> environment variable; a flag beats its variable.")

  @OptionGroup var flags: ServeFlags

  func run() throws {
    let environment = processEnvironment()
    let config = flags.config(environment: environment)
    let credentials: Credentials
    let spec = config.credentials
    let loader = CredentialLoader(config: config) { () throws(CredentialError) in
      try CredentialSource.load(spec, environment: environment, database: config.database)
    }
    credentials = loadCredentials(config, environment: environment)
    let logger = makeLogger(config)
    try runUntilSignalled(config: config, credentials: credentials, loader: loader, logger: logger) { runtime in
      logger.info(
        "authproxy \(AuthProxyVersion.current) proxying \(config.listenUnix.map { "unix:" + $0 } ?? "http://\(config.listen.host):\(runtime.proxyPort)") to \(config.upstream), admin on \(config.adminListen.host):\(runtime.adminPort), \(config.workers) worker\(config.workers == 1 ? "" : "s")"
      )
      let base = config.upstream.basePath
      if !base.isEmpty {
        // A base path is a prefix of every upstream path, the auth paths' too: said once, at
        // start, so that a URL copied with its /api/v2 is not a silent surprise.
        logger.notice(
          "--upstream has the base path \(base): it is put before every path sent upstream (an app's /api/v1/x goes to \(base)/api/v1/x, the login to \(base)\(config.loginPath))"
        )
      }
    }
  }
}

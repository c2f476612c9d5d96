import CShims
import Glibc
import Logging

/// Everything `authproxy serve` runs with: parsed and validated once, then immutable.
public struct ServeConfig: Sendable {
  public var listen = HostPort(host: "127.0.0.1", port: 8080)
  public var adminListen = HostPort(host: "127.0.0.1", port: 9901)
  public var upstream: UpstreamURL
  public var tls = UpstreamTLS()
  public var credentials = CredentialSpec.env
  /// How often a `db:` source is read again to pick up a rotated row (`--credentials-poll`).
  public var credentialsPoll = 60.0
  /// Where a `db:` source reads from; set whenever `--database-url` is.
  public var database: DatabaseSettings?
  public var userAgent = "authproxy/\(AuthProxyVersion.current)"
  public var connectTimeout = 30.0
  public var timeout = 60.0
  public var refreshBefore = 300.0
  public var accessLog = "-"
  /// Most access-log bytes held while the log cannot be written; later lines are dropped.
  public var accessLogBuffer = AccessLogSink.defaultBufferBytes
  public var workers = ServeConfig.defaultWorkers
  /// `--max-connections`: client connections open at once, over all workers.
  public var maxConnections = ServeConfig.defaultMaxConnections
  public var maxBody = 10 * 1024 * 1024
  public var drainTimeout = 20.0
  public var loginPath = "/auth/login"
  public var refreshPath = "/auth/refresh"
  public var logoutPath = "/auth/logout"
  /// Apps reach only paths under this prefix (compared after RequestPolicy's normalisation).
  public var apiPrefix = "/api/"
  public var logoutOnExit = false
  public var retries = 3
  public var retryDelay = 1.0
  /// A request that must never be sent twice reuses an upstream connection only if it finished
  /// an exchange this recently (0: always a new connection).
  public var reuseWindow = 2.0
  /// `--max-upstream-connections`: upstream connections (busy and idle) per worker; 0: no cap.
  public var maxUpstreamConnections = 256
  public var allowCIDR = [CIDR.parse("127.0.0.0/8")!, CIDR.parse("::1/128")!]
  /// `--allow-cidr` was given: binding beyond loopback without it earns a warning.
  public var allowCIDRGiven = false
  public var tokenStore = TokenStoreSpec.memory
  public var logLevel = Logger.Level.info
  public var logFormat = LogFormat.text
  /// The live security monitor's window, thresholds and sinks (SPEC §7).
  public var alerts = AlertSettings()
  /// From ENCRYPTION_KEY; required with a Redis token store.
  public var encryptionKey: EncryptionKey?
  /// How long a client may take to send a request head.
  public var headerTimeout = 10.0
  /// `--listen unix:PATH`: the socket's path (then `listen` is unused), and its mode.
  public var listenUnix: String?
  public var listenMode: UInt32 = 0o660
  /// `--apps-file` and the apps it named at start (reloads reach the workers as messages).
  public var appsFile: String?
  public var apps: AppTable?
  /// `--allow-route`; nil: everything under `--api-prefix`.
  public var allowRoutes: RouteSet?
  /// `--max-upstream-concurrency`, `--rate-limit`, `--rate-burst`: for the whole process.
  public var limits = UpstreamLimits()

  public init(upstream: UpstreamURL) { self.upstream = upstream }

  /// The cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a
  /// container's CPU limit), so a sidecar on a 64-core node does not start 64 workers.
  public static var defaultWorkers: Int {
    var cores = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    let affinity = Int(ap_affinity_cpu_count())
    if affinity > 0 { cores = min(cores, affinity) }
    if let text = try? String(cgroupFile: "/sys/fs/cgroup/cpu.max") {
      let parts = text.split(separator: " ")
      if parts.count == 2, let quota = Double(parts[0]), let period = Double(parts[1]), period > 0 {
        cores = min(cores, max(1, Int((quota / period).rounded(.up))))
      }
    }
    return cores
  }

  /// Client connections that fit in the file-descriptor limit: each may hold an upstream
  /// connection too (two descriptors), and 64 stay for listeners, loops, logs and the control
  /// thread (the admin listener must keep answering under pressure).
  public static var defaultMaxConnections: Int {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < 4_000_000 else { return 1_000_000 }
    return defaultMaxConnectionsFor(descriptorLimit: Int(limit.rlim_cur))
  }

  /// The default `--max-connections` under a file-descriptor limit (`ulimit -n`).
  public static func defaultMaxConnectionsFor(descriptorLimit: Int) -> Int {
    max(16, min(1_000_000, (descriptorLimit - 64 - 8 * defaultWorkers) / 2))
  }

  /// This worker's share of `maxConnections` (the kernel spreads connections over the workers'
  /// sockets; a share each keeps the total within the limit).
  public var maxConnectionsPerWorker: Int { max(1, (maxConnections + workers - 1) / workers) }

  /// The auth paths apps may never reach through the proxy.
  public var authPaths: [String] { [loginPath, refreshPath, logoutPath] }
}

/// Every problem found in the flags and variables, each naming its flag and the fix.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
  public var problems: [String]
  public var description: String { problems.joined(separator: "\n") }
}

/// One serve flag: its name, variable, default and help, in one table that the CLI, the
/// validation and the docs share.
public struct FlagSpec: Sendable {
  public let name: String
  public let defaultValue: String?
  public let help: String
  public var environmentVariable: String {
    "AUTHPROXY_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
  }
}

extension String {
  fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
    split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
  }
}

extension ServeConfig {
  public static let flags: [FlagSpec] = ownFlags + appFlags + AlertSettings.flags()

  private static let ownFlags: [FlagSpec] = [
    FlagSpec(
      name: "listen", defaultValue: "127.0.0.1:8080",
      help:
        "Where apps connect (host:port, or unix:/path for a Unix socket). Loopback by default: anything that can reach this port acts with the integration's identity."
    ),
    FlagSpec(name: "admin-listen", defaultValue: "127.0.0.1:9901", help: "/healthz, /readyz and /metrics (host:port); never proxies."),
    FlagSpec(name: "upstream", defaultValue: nil, help: "Base URL of the API (required; https:// only)."),
    FlagSpec(name: "ca-file", defaultValue: nil, help: "PEM trust anchors to verify the upstream with, instead of the system store."),
    FlagSpec(
      name: "pin-sha256", defaultValue: nil,
      help: "SPKI pin(s) of the upstream key: base64 of its sha256, comma-separated (as curl's --pinnedpubkey)."),
    FlagSpec(name: "client-cert", defaultValue: nil, help: "PEM client certificate for mutual TLS to the upstream."),
    FlagSpec(name: "client-key", defaultValue: nil, help: "PEM private key of --client-cert."),
    FlagSpec(
      name: "credentials", defaultValue: "env",
      help:
        "Where the API username and password come from: env (API_USERNAME, API_PASSWORD); file:PATH (JSON {\"username\",\"password\"}; mode 0600/0400, or 0640/0440 owned by root); encrypted-file:PATH (made by `authproxy seal`, key in ENCRYPTION_KEY); vault:PATH (VAULT_ADDR, VAULT_TOKEN or VAULT_TOKEN_FILE, VAULT_CACERT); db:ID (the active row ID of api_credentials in --database-url, sealed as encrypted-file:, key in ENCRYPTION_KEY)."
    ),
    FlagSpec(
      name: "credentials-poll", defaultValue: "60s",
      help:
        "How often a db: source is read again; a changed row is tested with a login and switched to only if it works (SIGHUP reads it at once)."
    ),
    FlagSpec(
      name: "database-url", defaultValue: nil,
      help:
        "The database of --credentials db:ID: postgres://[user@]host[:port]/database[?libpq parameters] or mysql://[user@]host[:port]/database. TLS is verified (verify-full) unless the URL says sslmode=disable for a loopback server. A password in the URL only through AUTHPROXY_DATABASE_URL (a flag shows in ps)."
    ),
    FlagSpec(
      name: "database-password-file", defaultValue: nil,
      help:
        "File whose first line is the database password (read at each load); without it PostgreSQL also looks in PGPASSFILE and ~/.pgpass, MySQL/MariaDB in MYSQL_PWD."
    ),
    FlagSpec(
      name: "database-ca-file", defaultValue: nil,
      help: "PEM trust anchors to verify the database server with, instead of the system store."),
    FlagSpec(name: "database-timeout", defaultValue: "10s", help: "Database connect timeout (TLS included), and again query timeout."),
    FlagSpec(name: "user-agent", defaultValue: "authproxy/\(AuthProxyVersion.current)", help: "User-Agent sent upstream."),
    FlagSpec(name: "connect-timeout", defaultValue: "30s", help: "Upstream connect timeout, per attempt."),
    FlagSpec(
      name: "timeout", defaultValue: "60s",
      help:
        "Upstream response timeout, per attempt (also how long a request waits for a token, a request body may take to "
        + "arrive, and an idle client connection stays open)."),
    FlagSpec(
      name: "refresh-before", defaultValue: "300s", help: "Refresh this long before the access token expires (at most half its lifetime)."),
    FlagSpec(name: "access-log", defaultValue: "-", help: "JSON-lines access log file, or - for stdout."),
    FlagSpec(
      name: "access-log-buffer", defaultValue: "64MiB",
      help:
        "Most access-log bytes kept in memory while the log cannot be written (a full disk); they are retried every second, "
        + "later lines are dropped and counted (authproxy_access_log_dropped_lines_total)."),
    FlagSpec(name: "workers", defaultValue: String(ServeConfig.defaultWorkers), help: "Event-loop threads (default: the number of cores)."),
    FlagSpec(name: "max-body", defaultValue: "10MiB", help: "Larger request bodies get 413."),
    FlagSpec(
      name: "max-connections", defaultValue: nil,
      help:
        "Most client connections open at once, over all workers; at the limit the listener pauses and new clients wait in the "
        + "kernel's queue (default: derived from the file-descriptor limit, (ulimit -n - 64 - 8 per worker) / 2)."),
    FlagSpec(
      name: "header-timeout", defaultValue: "10s",
      help: "How long a client may take to send a request head (a slow one gets 408 and is closed)."),
    FlagSpec(
      name: "retries", defaultValue: "3",
      help: "More attempts for connection failures and 502/503/504/429, only for idempotent methods or requests with an Idempotency-Key."),
    FlagSpec(
      name: "retry-delay", defaultValue: "1s", help: "Wait between attempts (a Retry-After from the API is honoured up to --timeout)."),
    FlagSpec(
      name: "reuse-window", defaultValue: "2s",
      help:
        "A POST or PATCH without an Idempotency-Key (never sent twice) reuses an upstream connection only if it finished an exchange this recently, well under the API's keep-alive timeout; 0: always a new connection."
    ),
    FlagSpec(
      name: "max-upstream-connections", defaultValue: "256",
      help:
        "Most upstream connections per worker, busy and idle (HAProxy's server maxconn); more requests wait for one in order, up "
        + "to --timeout, then get 504; 0: no cap (a connection per request in flight)."),
    FlagSpec(
      name: "max-upstream-concurrency", defaultValue: nil,
      help:
        "Most requests under way upstream at once, over all workers; more wait in a bounded queue up to --timeout, then get 429 "
        + "with Retry-After (default: no limit)."),
    FlagSpec(
      name: "rate-limit", defaultValue: nil,
      help:
        "Most requests sent upstream per second over all workers, like 10/s (or 600/m, 3600/h); more wait in a bounded queue up "
        + "to --timeout, then get 429 with Retry-After (default: no limit)."),
    FlagSpec(
      name: "rate-burst", defaultValue: nil,
      help: "Requests --rate-limit lets through at once after a quiet spell (default: the rate per second, rounded up)."),
    FlagSpec(
      name: "allow-cidr", defaultValue: "127.0.0.0/8,::1/128",
      help: "Client addresses allowed to use the proxy (comma-separated networks); others get 403."),
    FlagSpec(name: "drain-timeout", defaultValue: "20s", help: "On SIGTERM, how long in-flight requests may finish."),
    FlagSpec(
      name: "token-store", defaultValue: "memory",
      help:
        "memory, or a Redis to share one token pair between replicas (needs ENCRYPTION_KEY): redis://[[user]:password@]host:port[/db], "
        + "rediss://… (TLS, certificate and name verified), or redis-sentinel://host:port[,host:port…]/MASTER[/db] (the master the "
        + "Sentinels name, followed through failovers; rediss-sentinel:// for TLS to the Sentinels and the master). A user in the "
        + "URL authenticates as that ACL user."),
    FlagSpec(
      name: "token-store-password-file", defaultValue: nil,
      help: "File holding the Redis password (one line), instead of the URL: keeps it out of the process list and the environment."),
    FlagSpec(
      name: "token-store-ca-file", defaultValue: nil, help: "PEM trust anchors for a rediss:// token store, instead of the system store."),
    FlagSpec(name: "token-store-client-cert", defaultValue: nil, help: "PEM client certificate for a rediss:// token store (mutual TLS)."),
    FlagSpec(name: "token-store-client-key", defaultValue: nil, help: "PEM private key of --token-store-client-cert."),
    FlagSpec(
      name: "token-store-timeout", defaultValue: "2s",
      help:
        "Bounds each Redis step: resolving, connecting, TLS and AUTH together, and every command. A Redis that does not answer in "
        + "time is dropped and reconnected with backoff; the proxy renews on its own meanwhile."),
    FlagSpec(name: "log-level", defaultValue: "info", help: "Diagnostic log level: trace, debug, info, notice, warning, error, critical."),
    FlagSpec(name: "log-format", defaultValue: "text", help: "Diagnostic log format on stderr: text or json."),
    FlagSpec(name: "login-path", defaultValue: "/auth/login", help: "The API's login path (never reachable by apps)."),
    FlagSpec(name: "refresh-path", defaultValue: "/auth/refresh", help: "The API's refresh path (never reachable by apps)."),
    FlagSpec(name: "logout-path", defaultValue: "/auth/logout", help: "The API's logout path (never reachable by apps)."),
    FlagSpec(
      name: "api-prefix", defaultValue: "/api/",
      help:
        "Apps reach only paths under this prefix (compared after percent-decoding and dot segments, case-insensitively); others get 403. The auth paths stay refused whatever it is."
    ),
    FlagSpec(
      name: "logout-on-exit", defaultValue: "false",
      help:
        "Revoke the client's tokens on shutdown. Off by default: a logout revokes every token of the client, so it would cut off every other replica."
    ),
  ]

  /// Builds the configuration from the given flags (name without dashes → value), falling back
  /// to `AUTHPROXY_*` variables and then to the defaults. Collects every problem before failing.
  public static func load(flags: [String: String], environment: [String: String]) -> Result<ServeConfig, ConfigErrors> {
    var problems: [String] = []
    func value(_ name: String) -> String? {
      if let given = flags[name] { return given }
      guard let spec = ServeConfig.flags.first(where: { $0.name == name }) else { return nil }
      if let fromEnv = environment[spec.environmentVariable] { return fromEnv }
      return spec.defaultValue
    }
    func source(_ name: String) -> String {
      flags[name] != nil
        ? "--\(name)"
        : environment[ServeConfig.flags.first { $0.name == name }?.environmentVariable ?? ""] != nil
          ? "\(ServeConfig.flags.first { $0.name == name }!.environmentVariable) (--\(name))" : "--\(name)"
    }
    func duration(_ name: String, positive: Bool = true) -> Double? {
      guard let text = value(name) else { return nil }
      guard let seconds = Units.duration(text), !positive || seconds > 0 else {
        if text.hasPrefix("-"), Units.duration(String(text.dropFirst())) != nil {
          problems.append("\(source(name)): '\(text)' is negative; give a duration of \(positive ? "more than" : "at least") 0, like 5s")
        } else if Units.duration(text) != nil {
          problems.append("\(source(name)): '\(text)' must be more than 0; write it like 500ms, 30s, 5m or 1h")
        } else {
          problems.append("\(source(name)): '\(text)' is not a duration; write it like 500ms, 30s, 5m or 1h")
        }
        return nil
      }
      return seconds
    }
    func hostPort(_ name: String) -> HostPort? {
      guard let text = value(name) else { return nil }
      guard let parsed = HostPort.parse(text) else {
        problems.append("\(source(name)): '\(text)' is not host:port; write it like 127.0.0.1:8080 or [::1]:8080")
        return nil
      }
      return parsed
    }
    func path(_ name: String) -> String? {
      guard let text = value(name) else { return nil }
      guard text.hasPrefix("/"), !text.contains("?"), !text.contains(" ") else {
        problems.append("\(source(name)): '\(text)' must be a path starting with /")
        return nil
      }
      return text
    }

    var upstream: UpstreamURL?
    if let text = value("upstream"), !text.isEmpty {
      switch UpstreamURL.parse(text) {
      case .success(let parsed): upstream = parsed
      case .failure(let why):
        // Never echoed whole: user information or a query may hold a secret.
        problems.append("\(source("upstream")): '\(Redaction.url(text))' \(why); give the API's https:// base URL")
      }
    } else {
      problems.append("--upstream is required: the API's base URL, e.g. --upstream https://api.example.com")
    }
    var config = ServeConfig(upstream: upstream ?? UpstreamURL(origin: "https://invalid", basePath: "", host: "invalid"))
    if let text = value("listen"), unixListenPath(text) == nil, let listen = hostPort("listen") { config.listen = listen }
    loadApps(into: &config, value: value, source: source, problems: &problems)
    if let admin = hostPort("admin-listen") { config.adminListen = admin }
    if let ca = value("ca-file") {
      if access(ca, R_OK) != 0 {
        problems.append("\(source("ca-file")): cannot read '\(ca)' (\(String(cString: strerror(errno)))); give a readable PEM file")
      } else {
        config.tls.caFile = ca
      }
    }
    if let text = value("pin-sha256") {
      let pins = text.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
      let valid = pins.allSatisfy { pin in
        pin.count == 44 && pin.hasSuffix("=")
          && pin.utf8.allSatisfy {
            $0 < 0x80
              && ($0 == 0x2B || $0 == 0x2F || $0 == 0x3D || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0)
                || (0x61...0x7A).contains($0))
          }
      }
      if pins.isEmpty || !valid {
        problems.append(
          "\(source("pin-sha256")): give base64 sha256 SPKI pins (44 characters each), e.g. from: openssl x509 -pubkey -noout -in cert.pem | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64"
        )
      } else {
        config.tls.pinnedPublicKeys = pins
      }
    }
    for (flag, keyPath) in [("client-cert", \UpstreamTLS.clientCertificate), ("client-key", \UpstreamTLS.clientKey)] {
      guard let file = value(flag) else { continue }
      if access(file, R_OK) != 0 {
        problems.append("\(source(flag)): cannot read '\(file)' (\(String(cString: strerror(errno)))); give a readable PEM file")
      } else if flag == "client-key", let problem = CredentialFile.permissionProblem(path: file) {
        // A private key is a secret like the password: the same rule as credential files.
        problems.append("\(source(flag)): \(problem)")
      } else {
        config.tls[keyPath: keyPath] = file
      }
    }
    if (config.tls.clientCertificate == nil) != (config.tls.clientKey == nil) {
      problems.append("--client-cert and --client-key go together: give both for mutual TLS")
    }
    if let text = value("credentials") {
      if let spec = CredentialSpec.parse(text) {
        config.credentials = spec
      } else {
        problems.append("\(source("credentials")): '\(text)' is not a credential source; use \(CredentialSpec.forms)")
      }
    }
    if let d = duration("credentials-poll") { config.credentialsPoll = d }
    loadDatabase(into: &config, flags: flags, environment: environment, value: value, source: source, problems: &problems)
    if let ua = value("user-agent") {
      if ua.isEmpty || ua.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
        problems.append("\(source("user-agent")): must be non-empty printable text")
      } else {
        config.userAgent = ua
      }
    }
    if let d = duration("connect-timeout") { config.connectTimeout = d }
    if let d = duration("timeout") { config.timeout = d }
    if let d = duration("refresh-before", positive: false) { config.refreshBefore = d }
    if let d = duration("drain-timeout", positive: false) { config.drainTimeout = d }
    if let log = value("access-log") {
      if log.isEmpty {
        problems.append("\(source("access-log")): give a file path, or - for stdout")
      } else {
        config.accessLog = log
      }
    }
    if let text = value("access-log-buffer") {
      if let size = Units.size(text), size >= 4096 {
        config.accessLogBuffer = size
      } else {
        problems.append("\(source("access-log-buffer")): '\(text)' is not a size of 4KiB or more; write it like 512KiB or 64MiB")
      }
    }
    if let text = value("workers") {
      if let n = Int(text), (1...256).contains(n) {
        config.workers = n
      } else {
        problems.append("\(source("workers")): '\(text)' is not a number of threads from 1 to 256")
      }
    }
    if let text = value("max-connections") {
      if let n = Int(text), (1...1_000_000).contains(n) {
        config.maxConnections = n
      } else {
        problems.append("\(source("max-connections")): '\(text)' is not a number of connections from 1 to 1000000")
      }
    }
    if let text = value("max-body") {
      if let size = Units.size(text) {
        config.maxBody = size
      } else {
        problems.append("\(source("max-body")): '\(text)' is not a size; write it like 512KiB or 10MiB")
      }
    }
    if let text = value("retries") {
      if let n = Int(text), (0...10).contains(n) {
        config.retries = n
      } else {
        problems.append("\(source("retries")): '\(text)' is not a number of retries from 0 to 10")
      }
    }
    if let text = value("max-upstream-connections") {
      if let n = Int(text), (0...100_000).contains(n) {
        config.maxUpstreamConnections = n
      } else {
        problems.append("\(source("max-upstream-connections")): '\(text)' is not a number of connections from 0 (no cap) to 100000")
      }
    }
    if let d = duration("retry-delay", positive: false) { config.retryDelay = d }
    config.limits = ServeConfig.parseLimits(value: value, source: source, problems: &problems)
    if let d = duration("reuse-window", positive: false) { config.reuseWindow = d }
    if let d = duration("header-timeout") { config.headerTimeout = d }
    if let text = value("allow-cidr") {
      if let networks = CIDR.parseList(text) {
        config.allowCIDR = networks
        config.allowCIDRGiven = flags["allow-cidr"] != nil || environment["AUTHPROXY_ALLOW_CIDR"] != nil
      } else {
        problems.append("\(source("allow-cidr")): '\(text)' is not a list of networks; write it like 10.0.0.0/8,fd00::/8")
      }
    }
    if let text = value("token-store") {
      switch TokenStoreSpec.parse(text) {
      case .success(let spec):
        config.tokenStore = spec
        if spec.isShared {
          if let encoded = environment["ENCRYPTION_KEY"], !encoded.isEmpty {
            do {
              config.encryptionKey = try EncryptionKey(base64: encoded)
            } catch {
              problems.append("ENCRYPTION_KEY (for --token-store): \(error.description)")
            }
          } else {
            problems.append(
              "\(source("token-store")): a shared token store needs ENCRYPTION_KEY (base64 of 32 bytes; \(EncryptionKey.howToMakeOne))")
          }
        }
      case .failure(let problem):
        // Never echo the URL: it may hold the Redis password.
        problems.append("\(source("token-store")): the value \(problem.description)")
      }
    }
    if case .redis(var target) = config.tokenStore {
      problems += loadRedisSettings(&target, value: value, source: source)
      if let seconds = duration("token-store-timeout") { target.timeout = seconds }
      config.tokenStore = .redis(target)
    } else {
      for flag in ["token-store-password-file", "token-store-ca-file", "token-store-client-cert", "token-store-client-key"]
      where value(flag) != nil {
        problems.append("\(source(flag)): only means something with a Redis --token-store")
      }
    }
    if let text = value("log-level") {
      if let level = Logger.Level(rawValue: text.lowercased()) {
        config.logLevel = level
      } else {
        problems.append("\(source("log-level")): '\(text)' is not one of trace, debug, info, notice, warning, error, critical")
      }
    }
    if let text = value("log-format") {
      if let format = LogFormat(rawValue: text.lowercased()) {
        config.logFormat = format
      } else {
        problems.append("\(source("log-format")): '\(text)' is not text or json")
      }
    }
    if let p = path("login-path") { config.loginPath = p }
    if let p = path("refresh-path") { config.refreshPath = p }
    if let p = path("logout-path") { config.logoutPath = p }
    if let p = path("api-prefix") {
      if p.contains("#") || p.contains("%") {
        problems.append("\(source("api-prefix")): '\(p)' must be a plain path prefix such as /api/ (no % or #)")
      } else {
        config.apiPrefix = p
      }
    }
    if let text = value("logout-on-exit") {
      switch text.lowercased() {
      case "true", "1", "yes": config.logoutOnExit = true
      case "false", "0", "no": config.logoutOnExit = false
      default: problems.append("\(source("logout-on-exit")): '\(text)' is not true or false")
      }
    }
    switch AlertSettings.load(flags: flags, environment: environment) {
    case .success(let alerts): config.alerts = alerts
    case .failure(let errors): problems += errors.problems
    }
    return problems.isEmpty ? .success(config) : .failure(ConfigErrors(problems: problems))
  }
}

extension ServeConfig {
  /// The `--token-store-*` flags that complete a Redis target: password file, TLS files, timeout.
  fileprivate static func loadRedisSettings(
    _ target: inout RedisTarget, value: (String) -> String?, source: (String) -> String
  ) -> [String] {
    var problems: [String] = []
    if let file = value("token-store-password-file") {
      if target.password != nil {
        problems.append("\(source("token-store-password-file")): the --token-store URL holds a password too; give it in one place only")
      } else if let bytes = readSmallFile(file) {
        let line = String(decoding: bytes.prefix { $0 != 0x0A && $0 != 0x0D }, as: UTF8.self)
        if line.isEmpty {
          problems.append("\(source("token-store-password-file")): '\(file)' is empty; write the Redis password on its first line")
        } else {
          target.password = Secret(line)
        }
      } else {
        problems.append("\(source("token-store-password-file")): cannot read '\(file)' (\(String(cString: strerror(errno))))")
      }
    }
    let tlsFlags = [
      ("token-store-ca-file", \RedisTarget.caFile), ("token-store-client-cert", \RedisTarget.clientCertificate),
      ("token-store-client-key", \RedisTarget.clientKey),
    ]
    for (flag, keyPath) in tlsFlags {
      guard let file = value(flag) else { continue }
      if !target.tls {
        problems.append("\(source(flag)): only means something with a rediss:// --token-store (TLS)")
      } else if access(file, R_OK) != 0 {
        problems.append("\(source(flag)): cannot read '\(file)' (\(String(cString: strerror(errno)))); give a readable PEM file")
      } else {
        target[keyPath: keyPath] = file
      }
    }
    if (value("token-store-client-cert") == nil) != (value("token-store-client-key") == nil) {
      problems.append("--token-store-client-cert and --token-store-client-key go together: give both for mutual TLS to Redis")
    } else if target.tls && problems.isEmpty {
      // Load the files now: a CA file that is not PEM is a configuration problem (exit 64),
      // not a failure of the running control thread.
      var settings = UpstreamTLS(caFile: target.caFile)
      settings.clientCertificate = target.clientCertificate
      settings.clientKey = target.clientKey
      do {
        _ = try TLSClientContext(settings)
      } catch {
        let flag =
          error.description.contains("client key")
          ? "token-store-client-key" : error.description.contains("client certificate") ? "token-store-client-cert" : "token-store-ca-file"
        problems.append("\(source(flag)): \(error.description); give a PEM file")
      }
    }
    return problems
  }

  /// A secret file's bytes (at most 4 KiB); nil with errno set when it cannot be read.
  private static func readSmallFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = read(fd, &buffer, buffer.count)
    guard n >= 0 else { return nil }
    return Array(buffer[0..<n])
  }
}

extension ServeConfig {
  /// `--database-url` and its companions: required with `--credentials db:`, checked here once.
  fileprivate static func loadDatabase(
    into config: inout ServeConfig, flags: [String: String], environment: [String: String], value: (String) -> String?,
    source: (String) -> String, problems: inout [String]
  ) {
    guard let text = value("database-url"), !text.isEmpty else {
      if case .database = config.credentials {
        problems.append(
          "--credentials \(config.credentials) needs --database-url (or AUTHPROXY_DATABASE_URL), e.g. postgres://authproxy@db.example.com/app"
        )
      }
      return
    }
    var settings: DatabaseSettings
    switch DatabaseURL.parse(text) {
    case .success(let url):
      // A flag's value shows in `ps` to every user of the host; a variable does not.
      if url.hasPassword && flags["database-url"] != nil {
        problems.append(
          "--database-url carries a password, which every user of this host sees in ps; give the URL in AUTHPROXY_DATABASE_URL instead, or the password in --database-password-file (or PGPASSFILE / ~/.pgpass for PostgreSQL)"
        )
        return
      }
      settings = DatabaseSettings(url: url)
    case .failure(let problem):
      // Never echoed: it may hold the password.
      problems.append("\(source("database-url")): the URL \(problem.reason)")
      return
    }
    for (flag, keyPath) in [("database-password-file", \DatabaseSettings.passwordFile), ("database-ca-file", \DatabaseSettings.caFile)] {
      guard let file = value(flag) else { continue }
      if access(file, R_OK) != 0 {
        problems.append("\(source(flag)): cannot read '\(file)' (\(String(cString: strerror(errno)))); give a readable file")
      } else {
        settings[keyPath: keyPath] = file
      }
    }
    if let text = value("database-timeout") {
      if let seconds = Units.duration(text), seconds >= 1 {
        settings.timeout = seconds
      } else {
        problems.append("\(source("database-timeout")): '\(text)' is not a duration of at least 1s; write it like 5s or 30s")
      }
    }
    config.database = settings
  }
}

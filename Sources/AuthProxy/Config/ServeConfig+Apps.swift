import Glibc

/// Issue 21's flags: who may call (`--apps-file`, a Unix-socket `--listen`) and what they may
/// call (`--allow-route`). Loaded by `ServeConfig.load` through `loadApps`.
extension ServeConfig {
  static let appFlags: [FlagSpec] = [
    FlagSpec(
      name: "apps-file", defaultValue: nil,
      help:
        "JSON file naming the apps that may use the proxy ({\"apps\":[{\"name\",\"key_sha256\",\"uid\",\"routes\",\"rate_limit\",\"burst\",\"max_concurrency\"}]}); "
        + "an app sends Proxy-Authorization: Bearer <key>, or is known by its uid on a unix: --listen. Others get 407. Same file rule as "
        + "the credentials file; read again when it changes and on SIGHUP (a bad new file keeps the old apps). Format: docs/operations.md."),
    FlagSpec(
      name: "allow-route", defaultValue: nil,
      help:
        "Routes every app may call, comma-separated METHOD /path rules (ANY: every method; a final * matches any rest of the path), "
        + "e.g. \"GET /api/v1/products*,POST /api/v1/orders\"; others get 403 route_denied (default: everything under --api-prefix)."),
    FlagSpec(
      name: "listen-mode", defaultValue: "0660",
      help: "File mode of a unix:/path --listen socket (octal); who may connect is who may write to it."),
  ]

  /// `--listen unix:/path`: the socket's path, else nil.
  static func unixListenPath(_ text: String) -> String? {
    text.hasPrefix("unix:") ? String(text.dropFirst(5)) : nil
  }

  /// Reads `--listen unix:…`, `--listen-mode`, `--apps-file` and `--allow-route` into `config`.
  static func loadApps(
    into config: inout ServeConfig, value: (String) -> String?, source: (String) -> String, problems: inout [String]
  ) {
    if let text = value("listen"), let path = unixListenPath(text) {
      if !path.hasPrefix("/") || path.utf8.count > 107 {
        problems.append(
          "\(source("listen")): '\(text)' needs an absolute socket path of at most 107 bytes, like unix:/run/authproxy/api.sock")
      } else {
        config.listenUnix = path
      }
    }
    if let text = value("listen-mode") {
      if let mode = UInt32(text, radix: 8), mode <= 0o777, text.utf8.allSatisfy({ (0x30...0x37).contains($0) }) {
        config.listenMode = mode
      } else {
        problems.append("\(source("listen-mode")): '\(text)' is not an octal file mode like 0660")
      }
    }
    if let path = value("apps-file"), !path.isEmpty {
      switch AppTable.load(path: path) {
      case .success(let table):
        config.apps = table
        config.appsFile = path
      case .failure(let error):
        problems.append("\(source("apps-file")) \(path): " + error.problems.joined(separator: "; "))
      }
    }
    if let text = value("allow-route") {
      switch RouteSet.parseList(text, origin: "--allow-route") {
      case .success(let set) where !set.rules.isEmpty: config.allowRoutes = set
      case .success: problems.append("\(source("allow-route")): give at least one METHOD /path rule, like GET /api/v1/products*")
      case .failure(let errors): problems += errors.errors.map { "\(source("allow-route")): \($0.description)" }
      }
    }
  }

  /// What the workers start with.
  public var appAccess: AppAccess { AppAccess(table: apps, global: allowRoutes) }
}

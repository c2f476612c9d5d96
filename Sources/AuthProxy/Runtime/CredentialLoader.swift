import Glibc
import Logging

/// How the runtime gets credentials again on rotation: the loader of the configured source,
/// the file to watch for changes, if the source is a file, and how often to read the source
/// again, if it is one that cannot be watched (a database).
public struct CredentialLoader: Sendable {
  public let load: @Sendable () throws(CredentialError) -> Credentials
  public let watchedFile: String?
  public let pollInterval: Double?

  public init(
    watchedFile: String? = nil, pollInterval: Double? = nil, load: @escaping @Sendable () throws(CredentialError) -> Credentials
  ) {
    self.load = load
    self.watchedFile = watchedFile
    self.pollInterval = pollInterval
  }

  /// The loader `serve` uses: a `db:` source is polled every `--credentials-poll`.
  public init(config: ServeConfig, load: @escaping @Sendable () throws(CredentialError) -> Credentials) {
    let polled: Bool
    if case .database = config.credentials { polled = true } else { polled = false }
    self.init(watchedFile: config.credentials.watchedFile, pollInterval: polled ? config.credentialsPoll : nil, load: load)
  }

  /// Credentials that never change (tests, `authproxy dev`).
  public static func fixed(_ credentials: Credentials) -> CredentialLoader { CredentialLoader { credentials } }
}

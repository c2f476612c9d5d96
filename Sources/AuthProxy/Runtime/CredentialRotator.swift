import Glibc
import Logging

/// Rotation without downtime (SPEC §3): on SIGHUP or a change of the credentials file, load the
/// new credentials and log in with them; switch only if that login succeeded, and log the old
/// token out only when it belonged to another client (a logout revokes every token of a client).
final class CredentialRotator {
  private(set) var current: Credentials
  private let loader: CredentialLoader
  private let tokens: TokenClient
  private let logger: Logger
  private var pollTimer: Timer?
  private var watch: SettledFileChange?
  private var inProgress = false
  /// Reads of a polled source (`db:`): the next one, and the backoff after an unreachable one.
  private var sourceTimer: Timer?
  private var sourceBackoff = 0.0
  /// Why the source could not be read the last time, while it cannot (for /readyz).
  private(set) var sourceProblem: String?

  /// The new pair, to be accepted by the token state machine.
  var onRotated: ((TokenPair) -> Void)?
  /// The rotation could not complete; the old credentials and tokens stay.
  var onFailure: ((String) -> Void)?
  /// The old client's token was logged out (true) or the logout failed (false).
  var onLogout: ((Bool) -> Void)?

  init(loop: EventLoop, current: Credentials, loader: CredentialLoader, tokens: TokenClient, logger: Logger, pollInterval: Double = 2) {
    self.current = current
    self.loader = loader
    self.tokens = tokens
    self.logger = logger
    if let file = loader.watchedFile {
      watch = SettledFileChange(path: file)
      pollTimer = Timer(loop: loop) { [unowned self] in
        self.poll(file, interval: pollInterval)
        self.pollTimer?.schedule(after: pollInterval)
      }
      pollTimer?.schedule(after: pollInterval)
    }
    if let interval = loader.pollInterval {
      sourceTimer = Timer(loop: loop) { [unowned self] in self.requestLoad?(CredentialRotator.pollReason) }
      sourceTimer?.schedule(after: interval)
    }
  }

  static let pollReason = "--credentials-poll"
  /// The first retry of an unreachable source; it doubles up to the poll interval.
  static let firstSourceRetry = 1.0

  private func poll(_ file: String, interval: Double) {
    switch watch?.poll(path: file) {
    case .settled:
      requestLoad?("the credentials file changed")
    case .settling(let first) where first:
      logger.info("the credentials file changed; reading it once it has stayed the same for \(interval)s")
    default:
      break
    }
  }

  /// Asks the owner to load the credentials off the loop (a Vault source blocks) and to
  /// hand the result to `rotate(with:reason:)`.
  var requestLoad: ((String) -> Void)?

  /// Switches to freshly loaded credentials if they log in.
  func rotate(with loaded: Result<Credentials, CredentialError>, reason: String) {
    scheduleNextRead(after: loaded)
    guard !inProgress else { return }
    let fresh: Credentials
    switch loaded {
    case .success(let credentials): fresh = credentials
    case .failure(let error) where error.kind == .unreachable && reason == CredentialRotator.pollReason:
      // A database that is down: the token held keeps serving; retried with backoff, not an
      // alert each time (a SIGHUP that finds it down is one).
      logger.warning(
        "cannot read the credentials (\(reason)): \(error.description); keeping the current ones, next attempt in \(Int(sourceBackoff))s")
      return
    case .failure(let error):
      fail("cannot load the new credentials: \(error.description)")
      return
    }
    // The same login (a rewritten file with a new mtime is not a rotation).
    guard fresh.username != current.username || fresh.password != current.password else {
      if reason == CredentialRotator.pollReason {
        logger.debug("credentials read (\(reason)): unchanged")
      } else {
        logger.info("credentials reloaded (\(reason)): unchanged")
      }
      return
    }
    inProgress = true
    logger.info("credentials changed (\(reason)): logging in with the new ones", metadata: ["user": "\(fresh.username)"])
    let previous = oldPairProvider?()
    tokens.login(fresh) { [weak self] result in
      guard let self else { return }
      self.inProgress = false
      switch result {
      case .failure(let failure):
        self.fail("login with the new credentials failed: \(failure.description); keeping the old credentials and tokens")
      case .success(let pair):
        self.current = fresh
        self.onRotated?(pair)
        guard let previous else { return }
        // Only two known, different clients make a logout safe: an unknown one may be the
        // same client, whose logout would revoke the new tokens too.
        if let before = previous.clientID, let after = pair.clientID, before != after {
          self.logger.info("rotation: the new login is another client; logging the old client's token out")
          self.tokens.logout(previous.accessToken) { outcome in
            self.onLogout?(outcome.isSuccess)
            if case .failure(let failure) = outcome {
              self.logger.warning("rotation: logging the old token out failed: \(failure.description)")
            }
          }
        } else {
          // Same (or unknown) client: a logout would revoke the new tokens too. The old ones are dropped.
          self.logger.info(
            previous.clientID == nil || pair.clientID == nil
              ? "rotation: the API did not name the client; the old tokens are dropped, not logged out"
              : "rotation: same client; the old tokens are dropped, not logged out")
        }
      }
    }
  }

  /// A polled source is read again after the poll interval, or sooner, with a doubling
  /// backoff, while it cannot be reached.
  private func scheduleNextRead(after loaded: Result<Credentials, CredentialError>) {
    guard let interval = loader.pollInterval, let sourceTimer else { return }
    if case .failure(let error) = loaded, error.kind == .unreachable {
      sourceProblem = error.description
      sourceBackoff = min(interval, sourceBackoff == 0 ? CredentialRotator.firstSourceRetry : sourceBackoff * 2)
      onSourceFailure?()
      sourceTimer.schedule(after: sourceBackoff)
    } else {
      sourceProblem = nil
      sourceBackoff = 0
      sourceTimer.schedule(after: interval)
    }
  }

  /// A read of a polled source failed because it could not be reached (for /metrics).
  var onSourceFailure: (() -> Void)?

  /// Where the pair in use comes from (set by the control loop).
  var oldPairProvider: (() -> TokenPair?)?

  private func fail(_ why: String) {
    logger.error("rotation_failure: \(why)", metadata: ["rule": "rotation_failure"])
    onFailure?(why)
  }
}

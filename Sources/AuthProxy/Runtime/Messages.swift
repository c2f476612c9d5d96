/// What the control thread tells a worker.
public enum WorkerMessage: Sendable {
  case token(TokenSnapshot)
  case tokenUnavailable(TokenFailure)
  /// Stop accepting connections; report `.workerDrained` once no request is in flight.
  case drain
  /// Flush and leave the loop.
  case exit
  /// `--apps-file` was read again: identify apps and check routes with this from now on.
  case apps(AppAccess)
  /// A client connection another worker accepted, for this one to serve (`ConnectionBalance`).
  case adopt(fd: Int32, address: String, port: Int, unix: Bool)
}

/// What workers (and signals, and the runtime) tell the control thread.
public enum ControlMessage: Sendable {
  case workersStarted([MailboxSender<WorkerMessage>])
  /// A worker has a request and no usable token.
  case tokenNeeded
  /// The upstream answered 401 to a request that carried this token generation.
  case tokenRejected(generation: UInt64)
  case workerDrained(Int)
  case shutdown
  /// Load the credentials again and rotate to them if they changed (as SIGHUP does).
  case reloadCredentials
  /// Something the security monitor counts (an upstream 401 or 403).
  case security(SecurityEvent)
  /// Credentials loaded off the loop, for a rotation.
  case credentialsLoaded(Result<Credentials, CredentialError>, reason: String)
  /// Read `--apps-file` again (as SIGHUP does).
  case reloadApps(reason: String)
  /// `--apps-file` read off the loop.
  case appsLoaded(Result<AppTable, AppsFileError>, reason: String)
}

import AuthProxy
import FoundationEssentials
import Synchronization

/// A faithful fake of the upstream API (SPEC §1, the Popup Reward Store API) over real TLS, on
/// its own thread: for `authproxy dev`, the integration tests and the benchmark.
///
/// Auth: `POST /auth/login`, `/auth/refresh` (rotating), `/auth/logout` (revokes every token of
/// the client). API, behind a bearer token: `/api/v1/echo…`, `/products`, `/orders`,
/// `/bytes?size=N`, `/slow?ms=N`, `/status/CODE`. The controls below steer it from any thread.
///
/// Fault endpoints, any method, each counting its requests by `key` (see `hits(_:)`):
/// - `/api/v1/flaky?key=K&fail=N[&status=503][&retry_after=S|&retry_after_date=S]`: the first N
///   requests with key K get `status` (with `Retry-After: S`, or an HTTP date S seconds ahead),
///   the later ones 200 `{"key","hit"}`.
/// - `/api/v1/reset?key=K`: reads the whole request, then closes the connection without a byte
///   of answer (the client sees an empty reply or a reset).
/// - `/api/v1/truncate?key=K&size=N&send=M[&chunked=1]`: a 200 head with `Content-Length: N`
///   (or chunked), M bytes of body, then the connection is cut (a reply broken mid-body).
public final class SandboxAPI: Sendable {
  public static let demoUsers: [SandboxUser] = [
    SandboxUser(username: "demo", password: "demo-password", clientID: 123456),
    // The same integration after a password rotation: same client.
    SandboxUser(username: "demo-rotated", password: "demo-rotated-password", clientID: 123456),
    SandboxUser(username: "other", password: "other-password", clientID: 654321),
  ]

  /// The port it listens on (the one the kernel chose, when started with port 0).
  public let port: Int
  /// The address it listens on.
  public let host: String
  /// PEM of the throw-away CA a client must trust.
  public let caPath: String
  /// "https://localhost:PORT" ("https://[::1]:PORT" when listening on an IPv6 address).
  public var baseURL: String {
    host.contains(":") ? "https://[::1]:\(port)" : "https://localhost:\(port)"
  }

  private let store: SandboxStore
  private let control: MailboxSender<SandboxCommand>
  private let thread: Mutex<LoopThread?>

  /// Makes a throw-away PKI in `pkiDirectory` (created if missing) unless it already holds
  /// ca.pem, server.pem and server-key.pem, binds `host:port` (0: any free port) and serves on
  /// its own thread until `stop()`.
  public static func start(
    host: String = "127.0.0.1", port: Int = 0, pkiDirectory: String, users: [SandboxUser] = demoUsers,
    accessLifetime: Double = 3600, refreshLifetime: Double = 7 * 86400, requireClientCertificate: Bool = false
  ) throws -> SandboxAPI {
    let files = ["ca.pem", "server.pem", "server-key.pem"].map { pkiDirectory + "/" + $0 }
    if !files.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) {
      try FileManager.default.createDirectory(atPath: pkiDirectory, withIntermediateDirectories: true)
      try ThrowawayPKI.make(in: pkiDirectory, caName: "authproxy sandbox CA")
    }
    // Mutual TLS: clients must show a certificate of the sandbox CA (its own leaf will do).
    let tls = try TLSServerContext(
      certificatePath: files[1], keyPath: files[2], clientCAPath: requireClientCertificate ? files[0] : nil)
    let bound = try ListeningSocket.bind(host: host, port: port, reusePort: false)
    let store = SandboxStore(users: users, accessLifetime: accessLifetime, refreshLifetime: refreshLifetime)
    let loop = try SandboxLoop(socket: bound.fd, tls: tls, store: store)
    return SandboxAPI(host: host, port: bound.port, caPath: files[0], store: store, loop: loop)
  }

  private init(host: String, port: Int, caPath: String, store: SandboxStore, loop: SandboxLoop) {
    self.host = host
    self.port = port
    self.caPath = caPath
    self.store = store
    control = loop.control
    thread = Mutex(LoopThread(name: "sandbox-api") { loop.run() })
  }

  deinit { stop() }

  /// Stops the loop (open connections are closed) and joins its thread. Idempotent; when it
  /// returns, the sandbox no longer serves.
  public func stop() {
    thread.withLock { thread in
      guard let running = thread else { return }
      control.send(.stop)
      running.join()
      thread = nil
    }
  }

  // MARK: test controls (any thread)

  public var counters: SandboxCounters { store.counters }

  /// Lifetimes, in seconds, of the tokens issued from now on.
  public func setLifetimes(access: Double, refresh: Double) { store.setLifetimes(access: access, refresh: refresh) }

  /// Revokes every access and refresh token, of every client (as a password change in the
  /// dashboard does).
  public func revokeAllTokens() { store.revokeAllTokens() }

  /// Makes every login fail this way; nil: back to normal.
  public func failLogins(_ failure: SandboxLoginFailure?) { store.failLogins(failure) }

  /// Token answers with the `{"success":true,"data":…}` envelope (the default) or bare.
  public func setEnvelope(_ on: Bool) { store.setEnvelope(on) }

  /// Errors as `{"error":"unauthorized","message":…}` (older docs) instead of
  /// `{"error":{"name","code","message"}}` (the default).
  public func setFlatErrors(_ on: Bool) { store.setFlatErrors(on) }

  /// How token answers carry `client_id` (a number, as documented, by default).
  public func setClientIDForm(_ form: SandboxClientIDForm) { store.setClientIDForm(form) }

  /// Answers logins this many seconds late (a slow API at start-up).
  public func setLoginDelay(_ seconds: Double) { store.setLoginDelay(seconds) }

  /// The last `/api/v1` request received (with a valid token or not), as received.
  public var lastAPIRequest: SandboxRecordedRequest? { store.lastAPIRequest }
  /// Every auth call's path and `traceparent` ("" when it sent none), oldest first.
  public var authTraceparents: [(path: String, traceparent: String)] { store.authTraceparents }

  /// Every access and refresh token ever issued, in order (tests scan logs for them).
  public var issuedSecrets: [String] { store.issuedSecrets }

  /// How many requests with `?key=` this key reached the fault endpoints (`/api/v1/flaky`,
  /// `/api/v1/reset`, `/api/v1/truncate`) with a valid token: what the upstream really saw.
  public func hits(_ key: String) -> Int { store.hits(key) }

  /// Answers every `/api/v1/slow?ms=N` request still waiting, now: a test holds a request in
  /// flight for as long as it needs, with no timing window.
  public func wakeSleepers() { control.send(.wakeSleepers) }
}

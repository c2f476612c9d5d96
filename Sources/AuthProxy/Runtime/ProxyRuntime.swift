import Dispatch
import Glibc
import Logging
import Synchronization

/// The running proxy: sockets, the control thread and the workers, wired together. `main`
/// and the tests start it the same way.
public final class ProxyRuntime: Sendable {
  public let config: ServeConfig
  /// The ports actually bound (useful when the configuration asked for port 0).
  public let proxyPort: Int
  public let adminPort: Int
  private let control: MailboxSender<ControlMessage>
  private let threads: [LoopThread]
  private let accessLog: AccessLogSink
  /// `--listen unix:PATH`: removed at exit.
  private let unixSocketPath: String?

  /// Binds the listeners and starts every thread; returns once they accept connections.
  public init(
    config: ServeConfig, credentials: Credentials, loader: CredentialLoader? = nil, logger: Logger,
    clock: any WallClock = SystemClock(), monotonic: any MonotonicClock = SystemMonotonicClock(), watchSignals: Bool = false
  ) throws(StartupError) {
    let loader = loader ?? .fixed(credentials)
    signal(SIGPIPE, SIG_IGN)
    if watchSignals {
      // A parent may have started us with these blocked (the mask is inherited through exec),
      // and every thread started below inherits this thread's mask.
      var handled = sigset_t()
      sigemptyset(&handled)
      for signal in [SIGTERM, SIGINT, SIGHUP, SIGUSR1] { sigaddset(&handled, signal) }
      pthread_sigmask(SIG_UNBLOCK, &handled, nil)
    }
    self.config = config
    // libevent's own warnings (a failed accept, say) through the diagnostic log, rate-limited.
    EventLog.install(logger: logger, clock: clock)
    let sink: AccessLogSink
    do {
      sink = try AccessLogSink(path: config.accessLog, bufferBytes: config.accessLogBuffer, logger: logger, clock: clock)
    } catch {
      throw StartupError(error.description, exitCode: 64)
    }
    var listenSockets: [Int32] = []
    let adminSocket: Int32
    if let path = config.listenUnix {
      // One socket file, shared: each worker listens on its own descriptor of it.
      do {
        let fd = try ListeningSocket.bindUnix(path: path, mode: config.listenMode)
        listenSockets.append(fd)
        for _ in 1..<config.workers { listenSockets.append(fcntl(fd, F_DUPFD_CLOEXEC, 0)) }
      } catch {
        throw StartupError.cannotListenUnix(path: path, error)
      }
      unixSocketPath = path
      proxyPort = 0
    } else {
      unixSocketPath = nil
      do {
        // One socket, one accept queue, each worker listening on its own descriptor of it: the
        // worker that is free takes the next client (nginx's default). SO_REUSEPORT sockets,
        // one per worker, had the kernel hash clients evenly, so a worker whose core was busy
        // kept its share waiting while the other idled (bench/README.md, two workers).
        let first = try ListeningSocket.bind(host: config.listen.host, port: config.listen.port, reusePort: false)
        listenSockets.append(first.fd)
        for _ in 1..<config.workers { listenSockets.append(fcntl(first.fd, F_DUPFD_CLOEXEC, 0)) }
        proxyPort = first.port
      } catch {
        for fd in listenSockets { close(fd) }
        throw StartupError.cannotListen(flag: "--listen", at: config.listen, error)
      }
    }
    do {
      let admin = try ListeningSocket.bind(host: config.adminListen.host, port: config.adminListen.port, reusePort: false)
      adminSocket = admin.fd
      adminPort = admin.port
    } catch {
      for fd in listenSockets { close(fd) }
      if let path = config.listenUnix { unlink(path) }
      throw StartupError.cannotListen(flag: "--admin-listen", at: config.adminListen, error)
    }

    if config.listenUnix == nil && !config.listen.isLoopback && !config.allowCIDRGiven {
      logger.warning(
        "--listen \(config.listen) is not a loopback address: anything that can reach it acts with the integration's identity at the API. Only loopback clients are allowed until --allow-cidr names the apps' networks."
      )
    }
    let workerMetrics = listenSockets.map { _ in WorkerMetrics() }
    // The limits are for the process: every worker admits through the same ledger.
    let ledger = AdmissionLedger(global: config.limits)
    let balance = config.workers > 1 ? ConnectionBalance(workers: config.workers) : nil
    // The upstream's trusted CAs, parsed once for every worker; the control loop's logins get a
    // sibling store with the same parsed certificates (libcurl sets flags on its store).
    let trust: TrustStore
    let loginTrust: TrustStore
    do {
      trust = try TrustStore(caFile: config.tls.caFile)
      loginTrust = try trust.sibling()
    } catch {
      for fd in listenSockets + [adminSocket] { close(fd) }
      if let path = config.listenUnix { unlink(path) }
      throw StartupError.badCAFile(config.tls, error)
    }
    // The client certificate and key are read here, once, so that a bad one is a usage error
    // naming its flag instead of a worker that fails to start.
    do {
      let context = try TLSClientContext(config.tls, trust: trust)
      logger.debug("upstream TLS: 1.2 or 1.3; TLS 1.3 suites offered in this order: \(context.tls13Suites.joined(separator: ":"))")
    } catch {
      for fd in listenSockets + [adminSocket] { close(fd) }
      if let path = config.listenUnix { unlink(path) }
      throw StartupError.badClientCertificate(error)
    }
    let started = DispatchSemaphore(value: 0)
    let senders = Mutex<[Int: MailboxSender<WorkerMessage>]>([:])
    let controlSender = Mutex<MailboxSender<ControlMessage>?>(nil)
    let failures = Mutex<[String]>([])
    var threads: [LoopThread] = []
    let workerThreads = Mutex<[LoopThread]>([])

    threads.append(
      LoopThread(name: "ap-control") {
        do {
          let control = try ControlLoop(
            config: config, credentials: credentials, loader: loader, adminSocket: adminSocket, accessLog: sink,
            workerMetrics: workerMetrics, trust: loginTrust,
            clock: clock, logger: logger, watchSignals: watchSignals, ledger: ledger)
          controlSender.withLock { $0 = control.mailbox.sender }
          started.signal()
          control.run()
          workerThreads.withLock { threads in for thread in threads { thread.join() } }
        } catch {
          failures.withLock { $0.append("control thread: \(error)") }
          started.signal()
        }
      })
    started.wait()
    guard let control = controlSender.withLock({ $0 }) else {
      // Out of descriptors or memory, or a sink that cannot start: the system, not the flags.
      throw StartupError(failures.withLock { $0.joined(separator: "; ") }, exitCode: 69)
    }
    self.control = control
    // A failing access log is an alert of the security monitor (`audit_log_failure`).
    sink.onFailure { reason in control.send(.security(.auditLogFailed(reason: reason))) }

    for (index, fd) in listenSockets.enumerated() {
      let thread = LoopThread(name: "ap-worker-\(index)") {
        do {
          let worker = try Worker(
            id: index, config: config, listenSocket: fd, accessLog: sink, control: control, metrics: workerMetrics[index], trust: trust,
            clock: clock, monotonic: monotonic, logger: logger, ledger: ledger, balance: balance)
          senders.withLock { $0[index] = worker.mailbox.sender }
          started.signal()
          worker.run()
        } catch {
          failures.withLock { $0.append("worker \(index): \(error)") }
          started.signal()
        }
      }
      workerThreads.withLock { $0.append(thread) }
    }
    for _ in listenSockets { started.wait() }
    let workerSenders = senders.withLock { all in (0..<listenSockets.count).compactMap { all[$0] } }
    guard workerSenders.count == listenSockets.count else {
      // The workers that did start are told to stop too (the control thread joins them all).
      control.send(.workersStarted(workerSenders))
      control.send(.shutdown)
      throw StartupError(failures.withLock { $0.joined(separator: "; ") }, exitCode: 69)
    }
    control.send(.workersStarted(workerSenders))
    self.threads = threads
    accessLog = sink
  }

  /// Starts a graceful shutdown, as SIGTERM does.
  public func shutdown() { control.send(.shutdown) }

  /// Reads `--apps-file` again, as SIGHUP does.
  public func reloadApps() { control.send(.reloadApps(reason: "reload requested")) }

  /// Reloads the credentials and rotates to them if they changed, as SIGHUP does.
  public func reloadCredentials() { control.send(.reloadCredentials) }

  /// Waits until the proxy has shut down.
  public func wait() {
    for thread in threads { thread.join() }
    if let unixSocketPath { unlink(unixSocketPath) }
    accessLog.flushAndStop()
  }
}

import Dispatch
import Glibc
import Logging
import Synchronization

/// Why the proxy could not start: a message for the operator and the exit code of SPEC §8.
public struct StartupError: Error, Sendable, CustomStringConvertible {
  public let description: String
  public let exitCode: Int32
  public init(_ description: String, exitCode: Int32) {
    self.description = description
    self.exitCode = exitCode
  }
}

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

  /// Binds the listeners and starts every thread; returns once they accept connections.
  public init(
    config: ServeConfig, credentials: Credentials, loader: CredentialLoader? = nil, logger: Logger,
    clock: any WallClock = SystemClock(), watchSignals: Bool = false
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
    let sink: AccessLogSink
    do {
      sink = try AccessLogSink(path: config.accessLog)
    } catch {
      throw StartupError(error.description, exitCode: 64)
    }
    var listenSockets: [Int32] = []
    let adminSocket: Int32
    do {
      let first = try ListeningSocket.bind(host: config.listen.host, port: config.listen.port, reusePort: true)
      listenSockets.append(first.fd)
      for _ in 1..<config.workers {
        listenSockets.append(try ListeningSocket.bind(host: config.listen.host, port: first.port, reusePort: true).fd)
      }
      proxyPort = first.port
      let admin = try ListeningSocket.bind(host: config.adminListen.host, port: config.adminListen.port, reusePort: false)
      adminSocket = admin.fd
      adminPort = admin.port
    } catch {
      for fd in listenSockets { close(fd) }
      throw StartupError("cannot listen: \(error.description)", exitCode: 1)
    }

    if !config.listen.isLoopback && !config.allowCIDRGiven {
      logger.warning(
        "--listen \(config.listen) is not a loopback address: anything that can reach it acts with the integration's identity at the API. Only loopback clients are allowed until --allow-cidr names the apps' networks."
      )
    }
    let workerMetrics = listenSockets.map { _ in WorkerMetrics() }
    // The upstream's trusted CAs, parsed once for every worker; the control loop's logins get a
    // sibling store with the same parsed certificates (libcurl sets flags on its store).
    let trust: TrustStore
    let loginTrust: TrustStore
    do {
      trust = try TrustStore(caFile: config.tls.caFile)
      loginTrust = try trust.sibling()
    } catch {
      for fd in listenSockets + [adminSocket] { close(fd) }
      throw StartupError(error.description, exitCode: 1)
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
            clock: clock, logger: logger, watchSignals: watchSignals)
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
      throw StartupError(failures.withLock { $0.joined(separator: "; ") }, exitCode: 1)
    }
    self.control = control

    for (index, fd) in listenSockets.enumerated() {
      let thread = LoopThread(name: "ap-worker-\(index)") {
        do {
          let worker = try Worker(
            id: index, config: config, listenSocket: fd, accessLog: sink, control: control, metrics: workerMetrics[index], trust: trust,
            clock: clock, logger: logger)
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
      control.send(.shutdown)
      throw StartupError(failures.withLock { $0.joined(separator: "; ") }, exitCode: 1)
    }
    control.send(.workersStarted(workerSenders))
    self.threads = threads
    accessLog = sink
  }

  /// Starts a graceful shutdown, as SIGTERM does.
  public func shutdown() { control.send(.shutdown) }

  /// Reloads the credentials and rotates to them if they changed, as SIGHUP does.
  public func reloadCredentials() { control.send(.reloadCredentials) }

  /// Waits until the proxy has shut down.
  public func wait() {
    for thread in threads { thread.join() }
    accessLog.flushAndStop()
  }
}

import Logging

/// Why a command got no reply.
public enum RedisError: Error, Sendable, Equatable {
  case notConnected
  case timedOut
  case connectionLost
  /// Redis refuses our credentials: waiting will not help until the password is fixed.
  case authenticationFailed
}

/// How the token store's Redis is doing, for /readyz and the logs.
enum RedisHealth: Equatable {
  case connecting
  case up
  case down(String)
  case authenticationFailed(String)

  /// A sentence for /readyz, nil while all is well.
  var problem: String? {
    switch self {
    case .up: nil
    case .connecting: "token store: connecting to Redis"
    case .down(let why): "token store: Redis unreachable (\(why)); renewing on our own"
    case .authenticationFailed(let why): "token store: \(why); renewing on our own until the password is fixed"
    }
  }
}

/// The token store's Redis connection, on the control loop. Commands fail fast while it is down;
/// it reconnects by itself with capped, jittered backoff. With Sentinels it asks them for the
/// master before every connect, so after a failover the next connect finds the new master.
/// Nothing here blocks: see `RedisConnection`.
final class RedisClient {
  private let loop: EventLoop
  private let target: RedisTarget
  private let tlsContext: TLSClientContext?
  private let logger: Logger
  private let scratch = ReadScratch(size: 16 * 1024)
  private var connection: RedisConnection?
  private var probe: RedisConnection?
  private var closed = false
  private var reconnectDelay = RedisClient.firstDelay
  private var reconnectTimer: Timer?
  private(set) var health = RedisHealth.connecting
  /// Where the data node was found last (for the logs: a change is a failover).
  private var master: HostPort?
  /// Commands sent during the first connect, sent or failed when it ends.
  private var waitingForFirstConnect: [([String], Double?, (Result<RedisReply, RedisError>) -> Void)] = []
  var isConnected: Bool { health == .up }
  /// Told when the connection comes up (true) or goes down (false).
  var onStateChange: ((Bool) -> Void)?
  /// Told of every failure, by `RedisConnectionFailure.metricReason`.
  var onFailure: ((String) -> Void)?

  static let firstDelay = 0.1
  static let maximumDelay = 2.0

  init(loop: EventLoop, target: RedisTarget, logger: Logger) throws(EventError) {
    self.loop = loop
    self.target = target
    self.logger = logger
    if target.tls {
      var settings = UpstreamTLS(caFile: target.caFile)
      settings.clientCertificate = target.clientCertificate
      settings.clientKey = target.clientKey
      tlsContext = try TLSClientContext(settings)
    } else {
      tlsContext = nil
    }
    reconnectTimer = Timer(loop: loop) { [unowned self] in self.connect() }
  }

  func connect() {
    guard !closed, connection == nil, probe == nil else { return }
    switch target.locator {
    case .direct(let server): connectData(to: server)
    case .sentinel(let sentinels, let name): ask(sentinels[...], masterName: name)
    }
  }

  /// Stops for good (shutdown).
  func close() {
    closed = true
    let waiting = waitingForFirstConnect
    waitingForFirstConnect = []
    for (_, _, completion) in waiting { loop.soon { completion(.failure(.notConnected)) } }
    reconnectTimer?.cancel()
    probe?.shutdown()
    probe = nil
    connection?.shutdown()
    connection = nil
  }

  // MARK: finding the master

  /// Asks the Sentinels in turn where the master is; the first answer wins.
  private func ask(_ sentinels: ArraySlice<HostPort>, masterName: String) {
    guard let sentinel = sentinels.first else {
      lost(.down("no Sentinel named a master '\(masterName)'"), reason: "unreachable")
      return
    }
    let setup = RedisConnection.Setup(host: sentinel.host, port: sentinel.port, tls: tlsContext, bare: true, timeout: target.timeout)
    let rest = sentinels.dropFirst()
    var answered = false
    let probe = RedisConnection(
      loop: loop, setup: setup, scratch: scratch,
      onReady: {},
      onClosed: { [weak self] failure in
        guard let self, !answered, !self.closed else { return }
        self.probe = nil
        self.logger.debug("Sentinel \(sentinel): \(failure)")
        self.ask(rest, masterName: masterName)
      })
    self.probe = probe
    probe.command(
      ["SENTINEL", "get-master-addr-by-name", masterName].map { Array($0.utf8) }, timeout: target.timeout
    ) { [weak self, weak probe] result in
      guard let self, !self.closed else { return }
      guard case .success(.array(let parts)) = result, parts.count == 2, case .string(let host) = parts[0],
        case .string(let portText) = parts[1], let port = Int(String(decoding: portText, as: UTF8.self))
      else {
        if case .success = result { probe?.close(.protocolError("no master named '\(masterName)'")) }
        return
      }
      answered = true
      probe?.shutdown()
      self.probe = nil
      self.connectData(to: HostPort(host: String(decoding: host, as: UTF8.self), port: port))
    }
    probe.start()
  }

  // MARK: the data connection

  private func connectData(to server: HostPort) {
    var setup = RedisConnection.Setup(
      host: server.host, port: server.port, tls: tlsContext, username: target.username, password: target.password,
      database: target.database, timeout: target.timeout)
    if case .sentinel = target.locator { setup.requireMaster = true }
    let connection = RedisConnection(
      loop: loop, setup: setup, scratch: scratch,
      onReady: { [unowned self] in self.ready(server) },
      onClosed: { [weak self] failure in self?.ended(failure, server: server) })
    self.connection = connection
    connection.start()
  }

  private func ready(_ server: HostPort) {
    reconnectDelay = RedisClient.firstDelay
    let previous = master
    master = server
    health = .up
    if case .sentinel = target.locator, let previous, previous != server {
      logger.warning("Redis failover: the Sentinels name a new master \(server) (was \(previous))")
    }
    logger.info("Redis \(target.summary) connected (\(server))")
    onStateChange?(true)
    flushWaiting()
  }

  private func ended(_ failure: RedisConnectionFailure, server: HostPort) {
    connection = nil
    guard !closed else { return }
    if case .authentication(let why) = failure {
      lost(.authenticationFailed(RedisConnectionFailure.authentication(why).description), reason: failure.metricReason)
    } else {
      lost(.down("\(server): \(failure)"), reason: failure.metricReason)
    }
  }

  private func lost(_ newHealth: RedisHealth, reason: String) {
    let wasUp = health == .up
    let changed = health != newHealth
    health = newHealth
    onFailure?(reason)
    if changed {
      switch newHealth {
      case .authenticationFailed(let why):
        logger.error("Redis token store: \(why); renewing the token on our own until the password is fixed", metadata: ["reason": "auth"])
      case .down(let why):
        logger.warning(
          "Redis token store \(wasUp ? "connection lost" : "unreachable"): \(why); serving from the in-memory token and reconnecting",
          metadata: ["reason": "\(reason)"])
      case .up, .connecting: break
      }
    }
    if wasUp { onStateChange?(false) }
    flushWaiting()
    // Fast only right after a working master turned replica: a Sentinel that keeps naming a
    // non-master gets the usual backoff.
    scheduleReconnect(fast: reason == "failover" && wasUp)
  }

  private func flushWaiting() {
    let waiting = waitingForFirstConnect
    waitingForFirstConnect = []
    for (arguments, timeout, completion) in waiting { send(arguments, timeout: timeout, completion: completion) }
  }

  private func scheduleReconnect(fast: Bool) {
    guard !closed else { return }
    // A demoted master: ask the Sentinels again at once, they already know the new one.
    let delay = fast ? RedisClient.firstDelay : reconnectDelay * Double.random(in: 0.5..<1)
    reconnectTimer?.schedule(after: delay)
    reconnectDelay = min(reconnectDelay * 2, RedisClient.maximumDelay)
  }

  /// Sends one command; `completion` runs on the loop exactly once. Fails at once while the
  /// connection is not up, so a renewal never waits on a Redis that is down.
  func send(_ arguments: [String], timeout: Double? = nil, completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
    if health == .connecting && !closed {
      // The first connect is under way (start-up): worth its bounded wait, or every replica
      // would log in on its own before the store could tell them apart.
      waitingForFirstConnect.append((arguments, timeout, completion))
      return
    }
    guard let connection, health == .up else {
      let error: RedisError = if case .authenticationFailed = health { .authenticationFailed } else { .notConnected }
      loop.soon { completion(.failure(error)) }
      return
    }
    connection.command(arguments.map { Array($0.utf8) }, timeout: timeout ?? target.timeout) { result in
      switch result {
      case .success(let reply): completion(.success(reply))
      case .failure(.timedOut): completion(.failure(.timedOut))
      case .failure(.authentication): completion(.failure(.authenticationFailed))
      case .failure: completion(.failure(.connectionLost))
      }
    }
  }
}

import Logging

/// One connection to one Redis server (or Sentinel), entirely on the control loop: the name is
/// resolved on a helper thread (`HostResolver`), the connect and TLS handshake are non-blocking
/// (`TCPConnector` / `TLSClientSocket`, the data path's sockets), then AUTH, SELECT and a check
/// of the server's role are pipelined. One timer bounds all of that; each command has its own.
/// A command that times out ends the connection: later replies could not be matched any more.
final class RedisConnection: TLSClientSocketDelegate {
  struct Setup {
    var host: String
    var port: Int
    var tls: TLSClientContext?
    var username: String?
    var password: Secret?
    var database = 0
    /// Sentinel mode: the server must say it is the master (`ROLE`).
    var requireMaster = false
    /// Skip AUTH, SELECT and the role check (asking a Sentinel).
    var bare = false
    var timeout: Double
  }

  typealias Completion = (Result<RedisReply, RedisConnectionFailure>) -> Void

  private final class Pending {
    let completion: Completion
    var timer: Timer?
    init(_ completion: @escaping Completion) { self.completion = completion }
  }

  private let loop: EventLoop
  private let setup: Setup
  private let scratch: ReadScratch
  private let reader = RedisReplyReader()
  private var resolver: HostResolver?
  private var connector: TCPConnector?
  private var plain: ClientSocket?
  private var tls: TLSClientSocket?
  private var open = false
  private var output: [UInt8] = []
  private var pending: [Pending] = []
  private var connectTimer: Timer?
  private(set) var isReady = false
  private var finished = false
  private let onReady: () -> Void
  private var onClosed: ((RedisConnectionFailure) -> Void)?

  init(
    loop: EventLoop, setup: Setup, scratch: ReadScratch, onReady: @escaping () -> Void,
    onClosed: @escaping (RedisConnectionFailure) -> Void
  ) {
    self.loop = loop
    self.setup = setup
    self.scratch = scratch
    self.onReady = onReady
    self.onClosed = onClosed
  }

  deinit { shutdown() }

  var endpoint: String { HostPort(host: setup.host, port: setup.port).description }

  func start() {
    connectTimer = Timer(loop: loop) { [weak self] in self?.close(.timedOut) }
    connectTimer?.schedule(after: setup.timeout)
    do {
      resolver = try HostResolver(loop: loop, host: setup.host, port: setup.port) { [weak self] addresses in
        self?.resolved(addresses)
      }
      resolver?.resolve()
    } catch {
      loop.soon { [weak self] in self?.close(.unreachable) }
    }
    queueHandshake()
  }

  private func resolved(_ addresses: [SocketAddress]) {
    guard !finished else { return }
    guard !addresses.isEmpty else { return close(.unresolved) }
    if let context = setup.tls {
      let socket = TLSClientSocket(
        loop: loop, context: context, scratch: scratch, host: setup.host, addresses: addresses, timeout: setup.timeout)
      socket.delegate = self
      tls = socket
      return
    }
    connector = TCPConnector(loop: loop, addresses: addresses, scratch: scratch) { [weak self] socket in
      guard let self else { return }
      self.connector = nil
      guard let socket else { return self.close(.unreachable) }
      socket.onBytes = { [unowned self] bytes in self.received(bytes) }
      socket.onClosed = { [unowned self] in self.close(.closed) }
      self.plain = socket
      self.opened()
    }
  }

  /// AUTH, SELECT and PING (or ROLE) go out first; the connection is ready when all are answered.
  private func queueHandshake() {
    guard !setup.bare else {
      // Ready as soon as the transport is open (see opened()).
      return
    }
    if let password = setup.password {
      let arguments = ["AUTH"] + (setup.username.map { [$0] } ?? []) + [password.reveal]
      command(arguments.map { Array($0.utf8) }, timeout: nil) { [weak self] result in
        guard let self else { return }
        switch result {
        case .success(.error(let message)): self.close(.authentication(RedisConnection.errorCode(message)))
        case .failure(let failure): self.close(failure)
        case .success: break
        }
      }
    }
    if setup.database != 0 {
      command([Array("SELECT".utf8), Array(String(setup.database).utf8)], timeout: nil) { [weak self] result in
        if case .success(.error(let message)) = result { self?.close(.protocolError("SELECT: \(RedisConnection.errorCode(message))")) }
      }
    }
    let check = setup.requireMaster ? "ROLE" : "PING"
    command([Array(check.utf8)], timeout: nil) { [weak self] result in
      guard let self else { return }
      switch result {
      case .success(.error(let message)) where message.hasPrefix("NOAUTH"):
        self.close(.authentication("NOAUTH: the server wants a password and none is configured"))
      case .success(.error(let message)):
        self.close(.protocolError("\(check): \(RedisConnection.errorCode(message))"))
      case .success(.array(let role)) where self.setup.requireMaster:
        guard role.first == .string(Array("master".utf8)) else { return self.close(.notMaster) }
        self.becomeReady()
      case .success: self.becomeReady()
      case .failure(let failure): self.close(failure)
      }
    }
  }

  /// The first word of a Redis error ("WRONGPASS", "NOAUTH", "ERR"): enough to say what went
  /// wrong without repeating anything the server echoed.
  static func errorCode(_ message: String) -> String {
    String(message.prefix { $0 != " " }.prefix(32))
  }

  private func becomeReady() {
    guard !finished, !isReady else { return }
    isReady = true
    connectTimer?.cancel()
    connectTimer = nil
    onReady()
  }

  private func opened() {
    open = true
    if !output.isEmpty {
      let bytes = output
      output = []
      write(bytes)
    }
    if setup.bare { becomeReady() }
  }

  /// Sends one command; `completion` runs exactly once, on the loop. A `timeout` (nil: bounded
  /// by the connect timer) that runs out fails this command and ends the connection.
  func command(_ arguments: [[UInt8]], timeout: Double?, completion: @escaping Completion) {
    guard !finished else {
      loop.soon { completion(.failure(.closed)) }
      return
    }
    let entry = Pending(completion)
    if let timeout {
      entry.timer = Timer(loop: loop) { [weak self] in self?.close(.timedOut) }
      entry.timer?.schedule(after: timeout)
    }
    pending.append(entry)
    write(RedisReplyReader.encode(arguments))
  }

  private func write(_ bytes: [UInt8]) {
    guard open else {
      output += bytes
      return
    }
    if let tls {
      tls.send(bytes)
    } else if let plain {
      bytes.withUnsafeBytes { plain.write($0) }
    }
  }

  private func received(_ bytes: UnsafeRawBufferPointer) {
    guard !finished else { return }
    guard reader.feed(bytes) else { return close(.protocolError("reader")) }
    while !finished {
      let reply: RedisReply?
      do {
        reply = try reader.next()
      } catch {
        return close(.protocolError(error.message))
      }
      guard let reply else { return }
      guard !pending.isEmpty else { return close(.protocolError("a reply nobody asked for")) }
      let entry = pending.removeFirst()
      entry.timer?.cancel()
      entry.timer = nil
      // A demoted master refuses writes: the whole connection is stale, not just this command.
      if case .error(let message) = reply, message.hasPrefix("READONLY") {
        entry.completion(.failure(.notMaster))
        return close(.notMaster)
      }
      if case .error(let message) = reply, message.hasPrefix("NOAUTH"), isReady {
        entry.completion(.failure(.authentication("NOAUTH")))
        return close(.authentication("NOAUTH"))
      }
      entry.completion(.success(reply))
    }
  }

  /// Ends the connection: every waiting command fails with `failure`, then the owner hears it.
  func close(_ failure: RedisConnectionFailure) {
    guard !finished else { return }
    finished = true
    release()
    let waiting = pending
    pending = []
    for entry in waiting {
      entry.timer?.cancel()
      entry.completion(.failure(failure))
    }
    let callback = onClosed
    onClosed = nil
    callback?(failure)
  }

  /// Ends the connection without telling anyone (the owner is done with it).
  func shutdown() {
    onClosed = nil
    close(.closed)
  }

  private func release() {
    connectTimer?.cancel()
    connectTimer = nil
    resolver = nil
    connector?.cancel()
    connector = nil
    plain?.close()
    plain = nil
    tls?.discard()
    tls = nil
  }

  // MARK: TLSClientSocketDelegate

  func socketOpened(_ socket: TLSClientSocket) { opened() }

  func socket(_ socket: TLSClientSocket, received bytes: UnsafeRawBufferPointer) { received(bytes) }

  func socket(_ socket: TLSClientSocket, closed failure: TLSSocketFailure?) {
    switch failure {
    case .notTrusted: close(.tls("certificate not trusted or not issued for \(setup.host)"))
    case .handshake, .pinMismatch: close(.tls("handshake failed"))
    case .timedOut: close(.timedOut)
    case .refused: close(.unreachable)
    case .send, .receive, nil:
      // TLS 1.3 servers check a client certificate after the client's handshake is done: a
      // refusal shows as the first read failing.
      close(isReady ? .closed : .tls("the server ended the connection before answering (does it want a client certificate?)"))
    }
  }

  func socketTimerFired(_ socket: TLSClientSocket) {}
}

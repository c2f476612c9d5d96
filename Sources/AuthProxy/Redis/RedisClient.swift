import CHiredis
import CShims
import Glibc
import Logging

/// A Redis reply, copied out of hiredis's memory.
public enum RedisReply: Sendable, Equatable {
  case string([UInt8])
  case status(String)
  case integer(Int)
  case null
  case array([RedisReply])
  case error(String)
}

/// Why a command got no reply.
public enum RedisError: Error, Sendable, Equatable {
  case notConnected
  case timedOut
  case connectionLost
}

/// One asynchronous Redis connection on the control loop (hiredis + its libevent adapter).
/// Commands fail fast while it is down; it reconnects by itself with capped backoff.
final class RedisClient {
  private let loop: EventLoop
  private let host: String
  private let port: Int
  private let password: Secret?
  private let database: Int
  private let logger: Logger
  private var context: OpaquePointer?
  private var connecting = false
  private var closed = false
  private var reconnectDelay = 0.25
  private var reconnectTimer: Timer?
  private(set) var isConnected = false
  /// Told when the connection comes up (true) or goes down (false).
  var onStateChange: ((Bool) -> Void)?

  /// `host` must be an IP address (hiredis resolves names with a blocking call).
  init(loop: EventLoop, host: String, port: Int, password: Secret?, database: Int, logger: Logger) {
    self.loop = loop
    self.host = host
    self.port = port
    self.password = password
    self.database = database
    self.logger = logger
    reconnectTimer = Timer(loop: loop) { [unowned self] in self.connect() }
  }

  func connect() {
    guard !closed, context == nil, !connecting else { return }
    var err = [CChar](repeating: 0, count: 256)
    // Context: retained for hiredis until its status callback reports the end of this connection.
    let me = Unmanaged.passRetained(self).toOpaque()
    guard let ac = ap_redis_connect(loop.base, host, Int32(port), redisStatusTrampoline, me, &err, err.count) else {
      Unmanaged<RedisClient>.fromOpaque(me).release()
      logger.warning("Redis \(host):\(port): \(String(cBuffer: err))")
      scheduleReconnect()
      return
    }
    connecting = true
    context = OpaquePointer(ac)
    if let password { send(["AUTH", password.reveal], timeout: 2) { _ in } }
    if database != 0 { send(["SELECT", String(database)], timeout: 2) { _ in } }
  }

  /// Stops for good (shutdown).
  func close() {
    closed = true
    reconnectTimer?.cancel()
    if let context { redisAsyncDisconnect(UnsafeMutablePointer(context)) }
  }

  fileprivate func statusChanged(connected: Bool, status: Int32) {
    connecting = false
    if connected {
      isConnected = true
      reconnectDelay = 0.25
      logger.info("Redis \(host):\(port) connected")
      onStateChange?(true)
      return
    }
    let wasConnected = isConnected
    isConnected = false
    context = nil
    if wasConnected {
      logger.warning("Redis \(host):\(port) connection lost; serving from the in-memory token and reconnecting")
      onStateChange?(false)
    }
    scheduleReconnect()
  }

  private func scheduleReconnect() {
    guard !closed else { return }
    reconnectTimer?.schedule(after: reconnectDelay)
    reconnectDelay = min(reconnectDelay * 2, 10)
  }

  /// Sends one command; `completion` runs on the loop exactly once.
  func send(_ arguments: [String], timeout: Double = 2, completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
    guard let context, isConnected || connecting else {
      completion(.failure(.notConnected))
      return
    }
    let pending = PendingCommand(completion: completion)
    // hiredis 0.14 has no async timeouts: our own timer answers, and the late reply is dropped.
    pending.timer = Timer(loop: loop) { [weak pending] in pending?.finish(.failure(.timedOut)) }
    pending.timer?.schedule(after: timeout)
    let bytes = arguments.map { Array($0.utf8) }
    let lengths = bytes.map(\.count)
    // Context: retained for hiredis, which calls back exactly once per command (with a NULL
    // reply when the connection goes away); released there.
    let me = Unmanaged.passRetained(pending).toOpaque()
    let status = withCStrings(bytes) { argv in
      var pointers = argv
      return pointers.withUnsafeMutableBufferPointer { argvBuffer in
        ap_redis_command(UnsafeMutablePointer(context), redisReplyTrampoline, me, Int32(argvBuffer.count), argvBuffer.baseAddress, lengths)
      }
    }
    if status != 0 {
      Unmanaged<PendingCommand>.fromOpaque(me).release()
      pending.finish(.failure(.notConnected))
    }
  }
}

/// Runs `body` with C pointers to every argument (binary-safe: lengths are passed apart).
private func withCStrings<R>(_ arguments: [[UInt8]], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
  let buffers = arguments.map { bytes -> UnsafeMutablePointer<CChar> in
    let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, bytes.count))
    bytes.withUnsafeBufferPointer { source in
      source.withMemoryRebound(to: CChar.self) { chars in
        if let base = chars.baseAddress { buffer.update(from: base, count: bytes.count) }
      }
    }
    return buffer
  }
  defer {
    for (buffer, bytes) in zip(buffers, arguments) {
      // The arguments may hold a sealed token: clear before freeing.
      buffer.update(repeating: 0, count: max(1, bytes.count))
      buffer.deallocate()
    }
  }
  return body(buffers.map { UnsafePointer($0) })
}

/// A command waiting for its reply or its timeout, whichever comes first.
final class PendingCommand {
  private var completion: ((Result<RedisReply, RedisError>) -> Void)?
  var timer: Timer?
  init(completion: @escaping (Result<RedisReply, RedisError>) -> Void) { self.completion = completion }

  func finish(_ result: Result<RedisReply, RedisError>) {
    timer?.cancel()
    timer = nil
    let callback = completion
    completion = nil
    callback?(result)
  }
}

private func copyReply(_ raw: UnsafeMutablePointer<redisReply>) -> RedisReply {
  let reply = raw.pointee
  func text() -> String {
    guard let str = reply.str else { return "" }
    return String(decoding: UnsafeRawBufferPointer(start: str, count: reply.len), as: UTF8.self)
  }
  switch reply.type {
  case REDIS_REPLY_STRING:
    guard let str = reply.str else { return .string([]) }
    return .string(Array(UnsafeRawBufferPointer(start: str, count: reply.len)))
  case REDIS_REPLY_STATUS: return .status(text())
  case REDIS_REPLY_ERROR: return .error(text())
  case REDIS_REPLY_INTEGER: return .integer(Int(reply.integer))
  case REDIS_REPLY_ARRAY:
    var items: [RedisReply] = []
    for index in 0..<reply.elements {
      if let element = reply.element[index] { items.append(copyReply(element)) }
    }
    return .array(items)
  default: return .null
  }
}

private func redisReplyTrampoline(
  _ ac: UnsafeMutablePointer<redisAsyncContext>?, _ reply: UnsafeMutableRawPointer?, _ privdata: UnsafeMutableRawPointer?
) {
  guard let privdata else { return }
  let pending = Unmanaged<PendingCommand>.fromOpaque(privdata).takeRetainedValue()
  guard let reply else {
    pending.finish(.failure(.connectionLost))
    return
  }
  pending.finish(.success(copyReply(reply.assumingMemoryBound(to: redisReply.self))))
}

private func redisStatusTrampoline(_ ctx: UnsafeMutableRawPointer?, _ connected: Int32, _ status: Int32) {
  guard let ctx else { return }
  let client = Unmanaged<RedisClient>.fromOpaque(ctx)
  client.takeUnretainedValue().statusChanged(connected: connected != 0, status: status)
  // The connection is over (failed or lost): release the retain taken in connect().
  if connected == 0 { client.release() }
}

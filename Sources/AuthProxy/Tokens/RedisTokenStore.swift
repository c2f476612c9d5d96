import Logging

/// Shared token pair in Redis (SPEC §6): N replicas log in once, and refresh-token rotation
/// does not make them revoke each other. One replica renews at a time under a lock
/// (`SET NX PX`, a short lease its holder extends while it works, released only by its owner);
/// the others adopt what it writes. Stored values are sealed with AES-256-GCM. If Redis is down
/// or refuses our password, a replica renews on its own and says so.
final class RedisTokenStore: TokenStore {
  private let redis: RedisClient
  private let client: TokenClient
  private let credentials: () -> Credentials
  private let key: EncryptionKey
  private let clock: any WallClock
  private let logger: Logger
  private let tokenKey: String
  private let lockKey: String
  private let owner = RequestID.generate()
  private var pollTimer: Timer?
  /// Extends the lock's lease while this replica renews (one renewal at a time per store).
  private var leaseTimer: Timer?
  private let loop: EventLoop
  private var current: TokenPair?
  var onAdopt: ((TokenPair) -> Void)?
  var isShared: Bool { true }
  var problem: String? { redis.health.problem }

  /// The refresh lock is a short lease its holder extends while it works: a holder that dies
  /// (SIGKILL mid-refresh) blocks the others for at most this long, not a whole renewal's time.
  static let leaseMilliseconds = 2_000
  /// How often a holder extends its lease (a quarter of it: three renewals may be late).
  static let leaseRenewSeconds = 0.5
  /// How long to wait for a live holder (one that keeps renewing its lease) before renewing on
  /// our own anyway: it may be stuck on a slow API.
  static let holderPatience = 20.0
  /// While Redis is unreachable, a renewal waits for it only as long as the token in hand stays
  /// usable this much longer (then it renews on its own, SPEC §6).
  static let aloneMargin = 5.0
  /// How often the store is read for a pair another replica wrote.
  static let pollSeconds = 1.0

  init(
    loop: EventLoop, redis: RedisClient, client: TokenClient, credentials: @escaping () -> Credentials, key: EncryptionKey,
    keyName: String, clock: any WallClock, logger: Logger
  ) {
    self.loop = loop
    self.redis = redis
    self.client = client
    self.credentials = credentials
    self.key = key
    self.clock = clock
    self.logger = logger
    tokenKey = keyName
    lockKey = keyName + ":lock"
    pollTimer = Timer(loop: loop) { [unowned self] in
      self.poll()
      self.pollTimer?.schedule(after: RedisTokenStore.pollSeconds)
    }
    pollTimer?.schedule(after: RedisTokenStore.pollSeconds)
    leaseTimer = Timer(loop: loop) { [unowned self] in
      self.extendLease()
      self.leaseTimer?.schedule(after: RedisTokenStore.leaseRenewSeconds)
    }
    redis.connect()
  }

  /// The Redis key of a (upstream, username): a digest, so the key names no secret.
  static func keyName(upstream: UpstreamURL, username: String) -> String {
    let digest = SHA256Hasher.hash(Array("\(upstream.origin)\(upstream.basePath)\u{0}\(username)".utf8))
    return "authproxy:v1:token:" + digest.prefix(16).map { String($0, radix: 16).leftPadded(2) }.joined()
  }

  func close() {
    pollTimer?.cancel()
    leaseTimer?.cancel()
    redis.close()
  }

  // MARK: obtaining a pair

  typealias Obtained = (_ result: Result<TokenPair, TokenFailure>, _ adopted: Bool) -> Void

  func obtain(_ request: TokenRequest, have: TokenPair?, completion: @escaping Obtained) {
    let deadline = clock.now() + RedisTokenStore.holderPatience
    attempt(request, have: have, deadline: deadline) { [weak self] result, adopted in
      if case .success(let pair) = result { self?.current = pair }
      completion(result, adopted)
    }
  }

  private func attempt(
    _ request: TokenRequest, have: TokenPair?, deadline: Double, completion: @escaping Obtained
  ) {
    read { [self] stored in
      switch stored {
      case .unreachable(let error):
        // A brief outage (a failover, a restart) is worth waiting out while the token in hand
        // stays usable: renewing alone would spend the shared refresh token behind the others' backs.
        if error != .authenticationFailed, let have, have.accessExpiresAt - self.clock.now() > RedisTokenStore.aloneMargin {
          self.loop.after(0.25) { self.attempt(request, have: have, deadline: deadline, completion: completion) }
          return
        }
        self.alone(request, because: error, completion: completion)
      case .pair(let pair) where self.isNewerUsable(pair, than: have):
        completion(.success(pair), true)
      case .pair, .none:
        let lease = String(RedisTokenStore.leaseMilliseconds)
        self.redis.send(["SET", self.lockKey, self.owner, "NX", "PX", lease]) { reply in
          switch reply {
          case .success(.status("OK")):
            self.renewHoldingLock(request, have: have, completion: completion)
          case .success(.null):
            // Another replica is renewing: wait for what it writes, or for its lease to lapse.
            guard self.clock.now() < deadline else {
              self.logger.warning("the Redis lock holder wrote no token in time; renewing on our own")
              self.alone(request, because: nil, completion: completion)
              return
            }
            self.loop.after(0.2) { self.attempt(request, have: have, deadline: deadline, completion: completion) }
          case .success(let other):
            // An error reply (a refused command): nobody holds the lock, nothing to wait for.
            self.logger.warning("Redis refused the lock command (\(RedisTokenStore.errorCode(other))); renewing on our own")
            self.alone(request, because: nil, completion: completion)
          case .failure:
            self.loop.soon { self.attempt(request, have: have, deadline: deadline, completion: completion) }
          }
        }
      }
    }
  }

  private static func errorCode(_ reply: RedisReply) -> String {
    if case .error(let message) = reply { return RedisConnection.errorCode(message) }
    return "unexpected reply"
  }

  /// Holding the lock: read once more (the holder before us may have just written), renew,
  /// write, release.
  private func renewHoldingLock(_ request: TokenRequest, have: TokenPair?, completion: @escaping Obtained) {
    read { [self] stored in
      if case .pair(let pair) = stored, self.isNewerUsable(pair, than: have) {
        self.release()
        completion(.success(pair), true)
        return
      }
      // The stored chain is the live one: refresh with its refresh token, not an older own one.
      var effective = request
      if case .refresh = request, case .pair(let pair) = stored, pair.refreshExpiresAt > self.clock.now() {
        effective = .refresh(pair.refreshToken)
      }
      self.leaseTimer?.schedule(after: RedisTokenStore.leaseRenewSeconds)
      self.callAPI(effective) { result in
        self.leaseTimer?.cancel()
        if case .success(let pair) = result { self.write(pair) }
        self.release()
        completion(result, false)
      }
    }
  }

  /// Redis cannot help: renew without it, as a lone replica would.
  private func alone(_ request: TokenRequest, because error: RedisError?, completion: @escaping Obtained) {
    if error == .authenticationFailed {
      logger.warning("Redis refuses the token store's password: renewing the token on our own (other replicas may do the same)")
    } else if error != nil {
      logger.warning("Redis token store unreachable: renewing the token on our own (other replicas may do the same)")
    }
    callAPI(request) { completion($0, false) }
  }

  private func callAPI(_ request: TokenRequest, completion: @escaping (Result<TokenPair, TokenFailure>) -> Void) {
    switch request {
    case .login: client.login(credentials(), completion: completion)
    case .refresh(let token): client.refresh(token, completion: completion)
    }
  }

  func save(_ pair: TokenPair) {
    current = pair
    write(pair)
  }

  // MARK: Redis

  private enum Stored {
    case none
    case pair(TokenPair)
    case unreachable(RedisError)
  }

  private func read(_ completion: @escaping (Stored) -> Void) {
    redis.send(["GET", tokenKey]) { [key, clock] reply in
      switch reply {
      case .success(.string(let sealed)):
        guard let pair = StoredTokenPair.open(sealed, key: key, now: clock.now()) else {
          // Written under another key, or damaged: treat as absent (it will be overwritten).
          completion(.none)
          return
        }
        completion(.pair(pair))
      case .success(.error(let message)) where message.hasPrefix("NOAUTH") || message.hasPrefix("WRONGPASS"):
        completion(.unreachable(.authenticationFailed))
      case .success: completion(.none)
      case .failure(let error): completion(.unreachable(error))
      }
    }
  }

  private func write(_ pair: TokenPair) {
    guard let sealed = StoredTokenPair.seal(pair, key: key) else { return }
    // TTL: the refresh token's lifetime plus five minutes.
    let ttl = max(1000, Int((pair.refreshExpiresAt - clock.now() + 300) * 1000))
    redis.send(["SET", tokenKey, sealed, "PX", String(ttl)]) { [logger] reply in
      if case .failure(let error) = reply { logger.warning("cannot store the token in Redis: \(error)") }
    }
  }

  /// Extends the lease while we work, only if the lock is still ours.
  private func extendLease() {
    let script = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
    redis.send(["EVAL", script, "1", lockKey, owner, String(RedisTokenStore.leaseMilliseconds)]) { [logger] reply in
      if case .success(.integer(0)) = reply { logger.warning("the Redis refresh lock lapsed while renewing (Redis stalled?)") }
    }
  }

  /// Deletes the lock only if it is still ours (it may have expired and been taken).
  private func release() {
    let script = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
    redis.send(["EVAL", script, "1", lockKey, owner]) { _ in }
  }

  /// Adopts a pair another replica wrote, without waiting for our own expiry check.
  private func poll() {
    guard redis.isConnected else { return }
    read { [self] stored in
      guard case .pair(let pair) = stored, self.isNewerUsable(pair, than: self.current) else { return }
      self.current = pair
      self.onAdopt?(pair)
    }
  }

  /// A stored pair is worth adopting when it is not ours and still usable for a while.
  private func isNewerUsable(_ stored: TokenPair, than have: TokenPair?) -> Bool {
    let now = clock.now()
    let lifetimeLeft = stored.accessExpiresAt - now
    guard lifetimeLeft > 1 else { return false }
    guard let have else { return true }
    return stored.accessToken != have.accessToken && stored.accessExpiresAt >= have.accessExpiresAt
  }
}

extension String {
  func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

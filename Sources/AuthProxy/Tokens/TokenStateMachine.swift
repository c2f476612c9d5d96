/// The token lifecycle as a value: idle → logging in → valid → refreshing → backing off → …
/// It decides; `ControlLoop` performs the returned actions. No I/O here, so tests drive it.
public struct TokenStateMachine: Sendable {
  public enum Phase: Sendable, Equatable { case idle, loggingIn, valid, refreshing, backingOff }

  public enum Event: Sendable {
    /// A worker has no usable token (first request, or its token expired).
    case tokenNeeded
    /// The upstream answered 401 to the token of this generation.
    case tokenRejected(generation: UInt64)
    case refreshDue
    case retryDue
    case loginFinished(Result<TokenPair, TokenFailure>)
    /// A rotation logged in with new credentials: this pair replaces the current one.
    case rotated(TokenPair)
    case refreshFinished(Result<TokenPair, TokenFailure>)
  }

  public enum Action: Sendable, Equatable {
    case login
    case refresh(Secret)
    case publish(TokenSnapshot)
    case publishUnavailable(TokenFailure)
    case scheduleRefresh(at: Double)
    case scheduleRetry(after: Double)
  }

  public private(set) var phase = Phase.idle
  public private(set) var pair: TokenPair?
  public private(set) var snapshot: TokenSnapshot?
  public private(set) var lastFailure: TokenFailure?
  public private(set) var consecutiveFailures = 0
  private var generation: UInt64 = 0

  public let refreshBefore: Double
  public let backoffBase: Double
  public let backoffCap: Double

  public init(refreshBefore: Double, backoffBase: Double = 1, backoffCap: Double = 60) {
    self.refreshBefore = refreshBefore
    self.backoffBase = backoffBase
    self.backoffCap = backoffCap
  }

  /// Is there a token a request may carry now?
  public func hasUsableToken(at now: Double) -> Bool { snapshot?.isUsable(at: now) ?? false }

  /// `jitter` is a number in 0..<1 (random in production, fixed in tests).
  public mutating func handle(_ event: Event, now: Double, jitter: Double) -> [Action] {
    switch event {
    case .tokenNeeded:
      switch phase {
      case .idle:
        phase = .loggingIn
        return [.login]
      case .loggingIn, .refreshing:
        return []
      case .backingOff:
        if let snapshot, snapshot.isUsable(at: now) { return [.publish(snapshot)] }
        return lastFailure.map { [.publishUnavailable($0)] } ?? []
      case .valid:
        if let snapshot, snapshot.isUsable(at: now) { return [.publish(snapshot)] }
        return renew(now: now)
      }
    case .tokenRejected(let rejected):
      guard let current = snapshot else { return handle(.tokenNeeded, now: now, jitter: jitter) }
      if rejected < current.generation {
        // Already replaced: the worker only needs the newer one.
        return current.isUsable(at: now) ? [.publish(current)] : handle(.tokenNeeded, now: now, jitter: jitter)
      }
      // The current token was revoked server-side: never hand it out again.
      snapshot = TokenSnapshot(authorization: current.authorization, usableUntil: -.infinity, generation: current.generation)
      switch phase {
      case .valid: return renew(now: now)
      case .loggingIn, .refreshing: return []
      case .backingOff: return lastFailure.map { [.publishUnavailable($0)] } ?? []
      case .idle:
        phase = .loggingIn
        return [.login]
      }
    case .refreshDue:
      guard phase == .valid else { return [] }
      return renew(now: now)
    case .retryDue:
      guard phase == .backingOff else { return [] }
      phase = .loggingIn
      return [.login]
    case .loginFinished(.success(let pair)), .refreshFinished(.success(let pair)), .rotated(let pair):
      // A token already expired on arrival (the API's clock behind ours, or a lifetime shorter
      // than the trip) would be renewed in a loop: treat it as a failed login, with backoff.
      guard pair.accessExpiresAt > now else { return handle(.loginFinished(.failure(.expiredOnArrival)), now: now, jitter: jitter) }
      return accept(pair, now: now)
    case .refreshFinished(.failure):
      // A refused or failed refresh: log in again with the credentials.
      phase = .loggingIn
      return [.login]
    case .loginFinished(.failure(let failure)):
      consecutiveFailures += 1
      lastFailure = failure
      phase = .backingOff
      var actions: [Action] = []
      if !(snapshot?.isUsable(at: now) ?? false) { actions.append(.publishUnavailable(failure)) }
      actions.append(.scheduleRetry(after: backoff(jitter: jitter, retryAfter: failure.retryAfter)))
      return actions
    }
  }

  /// The wait before the next login attempt: exponential from `backoffBase`, capped, with
  /// jitter in the upper half, and never shorter than the API's Retry-After.
  public func backoff(jitter: Double, retryAfter: Double?) -> Double {
    let exponent = Double(min(max(consecutiveFailures - 1, 0), 30))
    let ceiling = min(backoffCap, backoffBase * pow2(exponent))
    let delay = ceiling * (0.5 + 0.5 * min(max(jitter, 0), 1))
    return max(delay, retryAfter ?? 0)
  }

  private func pow2(_ n: Double) -> Double {
    var result = 1.0
    for _ in 0..<Int(n) { result *= 2 }
    return result
  }

  private mutating func renew(now: Double) -> [Action] {
    if let pair, now < pair.refreshExpiresAt {
      phase = .refreshing
      return [.refresh(pair.refreshToken)]
    }
    phase = .loggingIn
    return [.login]
  }

  private mutating func accept(_ pair: TokenPair, now: Double) -> [Action] {
    generation += 1
    consecutiveFailures = 0
    lastFailure = nil
    phase = .valid
    self.pair = pair
    let lifetime = max(0, pair.accessExpiresAt - now)
    // Stop sending a token a little before it expires: transit time and clock skew.
    let snapshot = TokenSnapshot(
      authorization: Secret("Bearer " + pair.accessToken.reveal),
      usableUntil: pair.accessExpiresAt - min(1, lifetime * 0.1), generation: generation)
    self.snapshot = snapshot
    // Refresh --refresh-before ahead of expiry, but never before half the lifetime has passed,
    // so a short-lived token is not refreshed in a loop.
    let refreshAt = max(pair.accessExpiresAt - refreshBefore, now + lifetime / 2)
    return [.publish(snapshot), .scheduleRefresh(at: refreshAt)]
  }
}

/// One exchange's lifecycle as a value, from arrival to its access-log line:
///
///     arrived ─▶ queued ─▶ awaitingToken ─▶ sending ─▶ streaming ─▶ finished
///                              ▲   ▲          │   │
///                              │   └─ dropping(.replay)    a 401: once more, with a newer token
///                              └── retryPending ◀─ dropping(.retry) or a failed attempt
///
/// Any phase but `finished` may end early: a refusal, a timeout, the app going away.
/// Each event returns the one thing to do next (`Action`); `Worker` and `Forwarder` do it.
/// There is no I/O and no clock here (times come with the events), so
/// `ExchangeLifecycleTests` drives every path without a socket, as `TokenStateMachineTests`
/// does for the token.
struct ExchangeLifecycle {
  /// What `serve`'s flags say about retries (SPEC §4): the same for every exchange of a run.
  struct Policy: Sendable {
    /// `--retries`: attempts after the first, for requests that may be sent twice.
    var retries: Int
    /// `--retry-delay`: the least wait before another attempt.
    var retryDelay: Double
    /// `--timeout`: a `Retry-After` asking for longer is not waited for.
    var timeout: Double
    /// `--reuse-window`: 0 sends a request that must not be sent twice on a new connection.
    var reuseWindow: Double
  }

  /// The worker's token, as an exchange sees it.
  enum Token: Sendable {
    /// Nothing heard from the control thread yet.
    case starting
    case usable(TokenSnapshot)
    /// No token can be had now, for this reason.
    case unavailable(TokenFailure)
  }

  /// The attempt under way: with which token, on what kind of connection, what it answered.
  struct Attempt: Sendable, Equatable {
    let token: TokenSnapshot
    /// Sent on a connection opened for it (not a pooled one).
    let freshConnection: Bool
    var status: Int?
  }

  /// Why an answer is being dropped, and so what follows once its body is read.
  enum Drop: Sendable, Equatable {
    /// A 401 to our token: replay once with a newer one.
    case replay
    /// A retryable status (429, 502–504): another attempt after this many seconds.
    case retry(after: Double)
  }

  enum Phase: Sendable, Equatable {
    case arrived
    /// In its app's admission queue (`--max-upstream-concurrency`, `--rate-limit`).
    case queued
    /// Waiting, up to `--timeout`, for a token it may be sent with.
    case awaitingToken
    /// Waiting before another attempt.
    case retryPending
    /// An attempt is out, no answer yet.
    case sending(Attempt)
    /// The answer's head came and is not for the app: its body is read and dropped.
    case dropping(Attempt, then: Drop)
    /// The answer goes to the app; `paused` while the app's socket drains.
    case streaming(Attempt, paused: Bool)
    case finished
  }

  enum Action: Sendable, Equatable {
    case none
    /// Start an attempt with this token, on a new connection or a pooled one.
    case send(TokenSnapshot, freshConnection: Bool)
    /// Wait, up to `--timeout`, for the worker's next token.
    case waitForToken
    /// Pass the answer's head on to the app, then its body.
    case streamHead
    /// Read this answer's body and drop it; the attempt's end says what follows.
    case dropAnswer
    /// The API refused the token of this generation: ask for a newer one, then send again.
    case replay(rejected: UInt64)
    /// Another attempt after this many seconds, with the token current then.
    case retry(after: Double)
    /// The admission wait ran out: leave the queue, then `refuse` with a 429.
    case admissionExpired
    /// The whole answer went through: end the reply.
    case complete(status: Int)
    /// Answer with this JSON error.
    case fail(ProxyError)
    /// A request that must not be sent twice went out on a kept-alive connection that broke
    /// before any answer: the API may have acted on it. A 502 that says so, never a retry.
    case failAfterUnsafeReuse
    /// The answer broke after its head was passed on: take the reply back if none of it was
    /// written (then `streamRetracted`), else it will be cut.
    case retractStream(UpstreamError)
    /// Part of the answer reached the app: cut the connection (a cut body must not pass for a
    /// whole one), and log this status and error code.
    case cut(status: Int, code: String)
    /// The app's socket drained: read the upstream again.
    case resume
    /// The app went away: cancel what is under way and log `client_closed` with this status.
    case abandon(status: Int)
  }

  let policy: Policy
  /// Idempotent by its method (RFC 9110 §9.2.2).
  let idempotent: Bool
  /// May be sent twice: idempotent, or marked with an `Idempotency-Key` (SPEC §4).
  let retrySafe: Bool

  private(set) var phase = Phase.arrived
  /// Attempts started, replays and retries included.
  private(set) var attempts = 0
  /// It was replayed after a 401.
  private(set) var reauth = false
  /// The oldest token generation it may still be sent with (above the one a 401 refused).
  private(set) var minimumGeneration: UInt64 = 0
  /// The status of the answer passed on, or being passed on (nil after a dropped one).
  private(set) var upstreamStatus: Int?
  /// It holds an admission slot, to be released when it finishes.
  private(set) var admitted = false

  init(policy: Policy, idempotent: Bool, retrySafe: Bool) {
    self.policy = policy
    self.idempotent = idempotent
    self.retrySafe = retrySafe
  }

  var isFinished: Bool { phase == .finished }

  /// The attempt under way, if one is.
  var attempt: Attempt? {
    switch phase {
    case .sending(let attempt), .dropping(let attempt, _), .streaming(let attempt, _): attempt
    default: nil
    }
  }

  // MARK: before an attempt

  /// Admission said wait.
  mutating func queue() {
    if phase == .arrived { phase = .queued }
  }

  /// Admission gave it a slot (at once or after a wait).
  mutating func admit() {
    admitted = true
  }

  /// The token it may go with now (`now`: wall-clock seconds, as `TokenSnapshot` counts).
  mutating func offer(_ token: Token, now: Double) -> Action {
    switch phase {
    case .arrived, .queued, .awaitingToken, .retryPending: break
    case .sending, .dropping, .streaming, .finished: return .none
    }
    switch token {
    case .usable(let snapshot) where snapshot.isUsable(at: now) && snapshot.generation >= minimumGeneration:
      // A request that must never be sent twice goes on a connection that answered moments
      // ago (`--reuse-window`), else on a new one.
      return send(snapshot, freshConnection: !retrySafe && policy.reuseWindow <= 0)
    case .unavailable(let failure):
      return refuse(.noToken(failure))
    case .starting, .usable:
      // No token yet, or ours expired or was refused: never send it; wait (bounded) for the next.
      phase = .awaitingToken
      return .waitForToken
    }
  }

  /// The one timer of the exchange went off: what it bounded depends on the phase.
  mutating func timerFired(token: Token, now: Double) -> Action {
    switch phase {
    case .queued: return .admissionExpired
    case .awaitingToken: return refuse(.noToken("none could be had within --timeout (\(policy.timeout)s)"))
    case .retryPending: return offer(token, now: now)
    case .arrived, .sending, .dropping, .streaming, .finished: return .none
    }
  }

  // MARK: an attempt's answer

  /// The answer's head. `retryAfter` is its `Retry-After` in seconds (read only if a retry is
  /// in question); `budget` is the worker's retry budget, asked last (asking takes a retry), at
  /// monotonic `now` (read only then).
  mutating func head(
    status: Int, retryAfter: @autoclosure () -> Double?, budget: RetryBudget, now: @autoclosure () -> Double
  ) -> Action {
    guard case .sending(var attempt) = phase else { return .none }
    attempt.status = status
    upstreamStatus = status
    if status == 401 && !reauth {
      // The API refused the request before acting on it: drop this answer, replay once.
      phase = .dropping(attempt, then: .replay)
      return .dropAnswer
    }
    if status == 429 || (502...504).contains(status), let delay = retryDelay(retryAfter()), mayRetry(budget: budget, now: now()) {
      phase = .dropping(attempt, then: .retry(after: delay))
      return .dropAnswer
    }
    phase = .streaming(attempt, paused: false)
    return .streamHead
  }

  /// More than the high watermark is queued to the app: the upstream is not read until it drains.
  mutating func backlogged() {
    if case .streaming(let attempt, paused: false) = phase { phase = .streaming(attempt, paused: true) }
  }

  mutating func drained() -> Action {
    guard case .streaming(let attempt, paused: true) = phase else { return .none }
    phase = .streaming(attempt, paused: false)
    return .resume
  }

  /// The attempt ended: a whole answer, or why not. `reusedConnection`: it ran on a pooled one.
  mutating func ended(error: UpstreamError?, reusedConnection: Bool, budget: RetryBudget, now: Double) -> Action {
    switch phase {
    case .dropping(let attempt, .replay):
      reauth = true
      minimumGeneration = attempt.token.generation + 1
      phase = .awaitingToken
      return .replay(rejected: attempt.token.generation)
    case .dropping(_, .retry(let delay)):
      upstreamStatus = nil
      phase = .retryPending
      return .retry(after: delay)
    case .streaming:
      guard let error else {
        phase = .finished
        return .complete(status: upstreamStatus ?? 502)
      }
      return .retractStream(error)
    case .sending(let attempt):
      // No head came: no `error` here would be a transfer that ended without an answer.
      let error = error ?? .emptyReply
      let stale = reusedConnection && error.mayBeAStaleConnection
      if stale && !attempt.freshConnection && idempotent {
        // A pooled connection the upstream closed just as we sent on it: once more on a new one.
        return send(attempt.token, freshConnection: true)
      }
      if stale && !retrySafe {
        // The same race, for a request that must not be sent twice: it may have reached the API.
        phase = .finished
        return .failAfterUnsafeReuse
      }
      if error.isRetryable && mayRetry(budget: budget, now: now) {
        phase = .retryPending
        return .retry(after: policy.retryDelay)
      }
      return refuse(.upstream(error.failure))
    case .arrived, .queued, .awaitingToken, .retryPending, .finished:
      return .none
    }
  }

  /// After `retractStream`: was the reply taken back (none of it written)?
  mutating func streamRetracted(_ retracted: Bool, error: UpstreamError) -> Action {
    guard case .streaming = phase else { return .none }
    if retracted {
      // The app gets the JSON error as if the head had never come (the connection stays in step).
      return refuse(.upstream(error.failure))
    }
    phase = .finished
    return .cut(status: upstreamStatus ?? 502, code: error.failure.code)
  }

  // MARK: the end

  /// Ends it with a JSON error, unless it already ended.
  mutating func refuse(_ error: ProxyError) -> Action {
    guard phase != .finished else { return .none }
    phase = .finished
    return .fail(error)
  }

  /// The app closed its connection.
  mutating func clientGone() -> Action {
    guard phase != .finished else { return .none }
    phase = .finished
    return .abandon(status: upstreamStatus ?? 499)
  }

  // MARK: decisions

  private mutating func send(_ token: TokenSnapshot, freshConnection: Bool) -> Action {
    attempts += 1
    phase = .sending(Attempt(token: token, freshConnection: freshConnection, status: nil))
    return .send(token, freshConnection: freshConnection)
  }

  /// May it have one more attempt now? The budget is asked last: asking takes a retry from it.
  private func mayRetry(budget: RetryBudget, now: Double) -> Bool {
    attempts <= policy.retries && retrySafe && budget.allowRetry(now: now)
  }

  /// The wait before another attempt: `--retry-delay`, or longer when a `Retry-After` asks for
  /// it; nil when it asks for more than `--timeout` (no retry then).
  private func retryDelay(_ retryAfter: Double?) -> Double? {
    guard let seconds = retryAfter else { return policy.retryDelay }
    return seconds <= policy.timeout ? max(seconds, policy.retryDelay) : nil
  }
}

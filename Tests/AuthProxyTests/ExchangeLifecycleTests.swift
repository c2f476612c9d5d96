import Testing

@testable import AuthProxy

// The exchange's lifecycle without a socket: every path an app request can take, driven by
// events, checked by the actions and phases that come out.

private let t0 = 1_800_000_000.0

private let policy = ExchangeLifecycle.Policy(retries: 2, retryDelay: 0.25, timeout: 30, reuseWindow: 2)

private func token(_ generation: UInt64, until: Double = t0 + 3600) -> TokenSnapshot {
  TokenSnapshot(authorization: Secret("Bearer t\(generation)"), usableUntil: until, generation: generation)
}

private func lifecycle(
  method: String = "GET", retrySafe: Bool? = nil, policy: ExchangeLifecycle.Policy = policy
) -> ExchangeLifecycle {
  let idempotent = Forwarder.isIdempotent(method)
  return ExchangeLifecycle(policy: policy, idempotent: idempotent, retrySafe: retrySafe ?? idempotent)
}

/// A generous budget (the default leaves at least 3 retries).
private func budget() -> RetryBudget { RetryBudget() }

/// An exchange whose first attempt is out with token 1.
private func sending(method: String = "GET", retrySafe: Bool? = nil, policy: ExchangeLifecycle.Policy = policy)
  -> ExchangeLifecycle
{
  var exchange = lifecycle(method: method, retrySafe: retrySafe, policy: policy)
  _ = exchange.offer(.usable(token(1)), now: t0)
  return exchange
}

@Suite struct ExchangeLifecycleTests {
  // MARK: getting a token

  @Test func aUsableTokenSendsAtOnceOnAPooledConnection() {
    var exchange = lifecycle()
    #expect(exchange.offer(.usable(token(1)), now: t0) == .send(token(1), freshConnection: false))
    #expect(exchange.attempts == 1)
    #expect(exchange.attempt == .init(token: token(1), freshConnection: false, status: nil))
  }

  @Test func noTokenYetOrAnExpiredOneWaits() {
    var starting = lifecycle()
    #expect(starting.offer(.starting, now: t0) == .waitForToken)
    #expect(starting.phase == .awaitingToken)
    var expired = lifecycle()
    #expect(expired.offer(.usable(token(1, until: t0)), now: t0) == .waitForToken)
    #expect(expired.attempts == 0)
    // The next token sends it.
    #expect(expired.offer(.usable(token(2)), now: t0) == .send(token(2), freshConnection: false))
  }

  @Test func anUnavailableTokenAnswersWithItsCause() {
    var exchange = lifecycle()
    #expect(exchange.offer(.unavailable(.invalidCredentials), now: t0) == .fail(.noToken(.invalidCredentials)))
    #expect(exchange.isFinished)
    // Nothing more happens to a finished exchange.
    #expect(exchange.offer(.usable(token(1)), now: t0) == .none)
    #expect(exchange.clientGone() == .none)
  }

  @Test func theTokenWaitEndsIn503AfterTheTimeout() {
    var exchange = lifecycle()
    _ = exchange.offer(.starting, now: t0)
    guard case .fail(let error) = exchange.timerFired(token: .starting, now: t0 + 31) else {
      Issue.record("expected a refusal")
      return
    }
    #expect(error.status == 503 && error.code == "no_token" && error.message.contains("--timeout (30.0s)"))
    #expect(exchange.isFinished)
  }

  // MARK: requests that must not be sent twice

  @Test func aPostGoesOnAFreshConnectionOnlyWithoutAReuseWindow() {
    var post = lifecycle(method: "POST")
    #expect(post.offer(.usable(token(1)), now: t0) == .send(token(1), freshConnection: false))
    var noWindow = lifecycle(method: "POST", policy: .init(retries: 2, retryDelay: 0.25, timeout: 30, reuseWindow: 0))
    #expect(noWindow.offer(.usable(token(1)), now: t0) == .send(token(1), freshConnection: true))
    // An Idempotency-Key makes it retry-safe: a pooled connection whatever the window.
    var keyed = lifecycle(method: "POST", retrySafe: true, policy: .init(retries: 2, retryDelay: 0.25, timeout: 30, reuseWindow: 0))
    #expect(keyed.offer(.usable(token(1)), now: t0) == .send(token(1), freshConnection: false))
  }

  @Test func aStaleKeptAliveConnectionResendsAGetOnAFreshOne() {
    var get = sending()
    #expect(get.ended(error: .emptyReply, reusedConnection: true, budget: budget(), now: 0) == .send(token(1), freshConnection: true))
    #expect(get.attempts == 2)
    // The fresh one failing the same way is not the race: a retry, by the budget.
    #expect(get.ended(error: .emptyReply, reusedConnection: false, budget: budget(), now: 0) == .retry(after: 0.25))
  }

  @Test func theSameRaceForAPostIsReportedNeverResent() {
    var post = sending(method: "POST")
    #expect(post.ended(error: .sendFailed, reusedConnection: true, budget: budget(), now: 0) == .failAfterUnsafeReuse)
    #expect(post.isFinished && post.attempts == 1)
    // On a new connection the failure is the plain one, and still no second send.
    var fresh = sending(method: "POST")
    #expect(
      fresh.ended(error: .refused, reusedConnection: false, budget: budget(), now: 0) == .fail(.upstream(UpstreamError.refused.failure)))
  }

  @Test func aPatchWithAnIdempotencyKeyIsRetriedLikeAGet() {
    var patch = sending(method: "PATCH", retrySafe: true)
    #expect(patch.ended(error: .timedOut, reusedConnection: false, budget: budget(), now: 0) == .retry(after: 0.25))
    #expect(patch.phase == .retryPending)
    #expect(patch.timerFired(token: .usable(token(1)), now: t0) == .send(token(1), freshConnection: false))
  }

  // MARK: answers

  @Test func aSuccessStreamsAndCompletes() {
    var exchange = sending()
    #expect(exchange.head(status: 200, retryAfter: nil, budget: budget(), now: 0) == .streamHead)
    #expect(exchange.upstreamStatus == 200)
    #expect(exchange.ended(error: nil, reusedConnection: true, budget: budget(), now: 0) == .complete(status: 200))
    #expect(exchange.isFinished)
  }

  @Test func a401IsReplayedOnceWithANewerToken() {
    var exchange = sending()
    #expect(exchange.head(status: 401, retryAfter: nil, budget: budget(), now: 0) == .dropAnswer)
    #expect(exchange.ended(error: nil, reusedConnection: true, budget: budget(), now: 0) == .replay(rejected: 1))
    #expect(exchange.reauth && exchange.minimumGeneration == 2 && exchange.phase == .awaitingToken)
    // The refused token is never offered again...
    #expect(exchange.offer(.usable(token(1)), now: t0) == .waitForToken)
    // ...the newer one is.
    #expect(exchange.offer(.usable(token(2)), now: t0) == .send(token(2), freshConnection: false))
    // A second 401 goes to the app as it is.
    #expect(exchange.head(status: 401, retryAfter: nil, budget: budget(), now: 0) == .streamHead)
    #expect(exchange.ended(error: nil, reusedConnection: true, budget: budget(), now: 0) == .complete(status: 401))
    #expect(exchange.attempts == 2)
  }

  @Test func aRetryableStatusWaitsForRetryAfterWithinTheTimeout() {
    var exchange = sending()
    #expect(exchange.head(status: 503, retryAfter: 3, budget: budget(), now: 0) == .dropAnswer)
    #expect(exchange.ended(error: nil, reusedConnection: true, budget: budget(), now: 0) == .retry(after: 3))
    #expect(exchange.upstreamStatus == nil)
    // A Retry-After beyond --timeout is not waited for: the app gets the answer.
    var tooLong = sending()
    #expect(tooLong.head(status: 429, retryAfter: 31, budget: budget(), now: 0) == .streamHead)
    // No Retry-After: --retry-delay.
    var plain = sending()
    #expect(plain.head(status: 502, retryAfter: nil, budget: budget(), now: 0) == .dropAnswer)
    #expect(plain.ended(error: nil, reusedConnection: true, budget: budget(), now: 0) == .retry(after: 0.25))
  }

  @Test func retriesStopAtTheFlagAndAtTheBudget() {
    var exchange = sending()
    for _ in 0..<2 {
      _ = exchange.head(status: 503, retryAfter: nil, budget: budget(), now: 0)
      _ = exchange.ended(error: nil, reusedConnection: true, budget: budget(), now: 0)
      _ = exchange.timerFired(token: .usable(token(1)), now: t0)
    }
    #expect(exchange.attempts == 3)
    // --retries 2 spent: the third 503 goes to the app.
    #expect(exchange.head(status: 503, retryAfter: nil, budget: budget(), now: 0) == .streamHead)

    // An empty budget: no retry even for the first failure.
    let spent = RetryBudget(share: 0, minimum: 0)
    var starved = sending()
    #expect(starved.head(status: 503, retryAfter: nil, budget: spent, now: 0) == .streamHead)
  }

  @Test func aPostIsNeverRetriedOnAStatus() {
    var post = sending(method: "POST")
    #expect(post.head(status: 503, retryAfter: nil, budget: budget(), now: 0) == .streamHead)
  }

  @Test func theBudgetIsAskedOnlyWhenARetryIsInQuestion() {
    let counted = RetryBudget(share: 0, minimum: 1)
    var tooLong = sending()
    _ = tooLong.head(status: 503, retryAfter: 60, budget: counted, now: 0)
    var ok = sending()
    _ = ok.head(status: 200, retryAfter: nil, budget: counted, now: 0)
    // The one retry of the budget is still there.
    #expect(counted.allowRetry(now: 0))
  }

  // MARK: a broken answer

  @Test func anAnswerBrokenBeforeAnyByteWasWrittenBecomesAJSONError() {
    var exchange = sending()
    _ = exchange.head(status: 200, retryAfter: nil, budget: budget(), now: 0)
    #expect(exchange.ended(error: .cutBody, reusedConnection: true, budget: budget(), now: 0) == .retractStream(.cutBody))
    #expect(exchange.streamRetracted(true, error: .cutBody) == .fail(.upstream(UpstreamError.cutBody.failure)))
    #expect(exchange.isFinished)
  }

  @Test func anAnswerBrokenAfterBytesWereWrittenIsCut() {
    var exchange = sending()
    _ = exchange.head(status: 200, retryAfter: nil, budget: budget(), now: 0)
    _ = exchange.ended(error: .receiveFailed, reusedConnection: true, budget: budget(), now: 0)
    #expect(exchange.streamRetracted(false, error: .receiveFailed) == .cut(status: 200, code: "upstream_broken"))
    #expect(exchange.isFinished)
  }

  @Test func aTrustFailureIsNotRetried() {
    var exchange = sending()
    #expect(
      exchange.ended(error: .notTrusted, reusedConnection: false, budget: budget(), now: 0)
        == .fail(.upstream(UpstreamError.notTrusted.failure)))
  }

  // MARK: backpressure, the app leaving, admission

  @Test func aBackloggedStreamResumesOnceWhenDrained() {
    var exchange = sending()
    #expect(exchange.drained() == .none)
    _ = exchange.head(status: 200, retryAfter: nil, budget: budget(), now: 0)
    exchange.backlogged()
    #expect(exchange.phase == .streaming(.init(token: token(1), freshConnection: false, status: 200), paused: true))
    #expect(exchange.drained() == .resume)
    #expect(exchange.drained() == .none)
  }

  @Test func theAppLeavingAbandonsWithTheUpstreamStatusIfAny() {
    var waiting = lifecycle()
    _ = waiting.offer(.starting, now: t0)
    #expect(waiting.clientGone() == .abandon(status: 499))
    var streaming = sending()
    _ = streaming.head(status: 200, retryAfter: nil, budget: budget(), now: 0)
    #expect(streaming.clientGone() == .abandon(status: 200))
    // A late end of the cancelled attempt changes nothing.
    #expect(streaming.ended(error: .abandoned, reusedConnection: true, budget: budget(), now: 0) == .none)
  }

  @Test func theAdmissionWaitExpiresOnlyWhileQueued() {
    var exchange = lifecycle()
    exchange.queue()
    #expect(exchange.timerFired(token: .usable(token(1)), now: t0) == .admissionExpired)
    exchange.admit()
    #expect(exchange.admitted)
    #expect(exchange.offer(.usable(token(1)), now: t0) == .send(token(1), freshConnection: false))
    // The timer of a sent exchange does nothing.
    #expect(exchange.timerFired(token: .usable(token(1)), now: t0) == .none)
  }

  @Test func aRefusalEndsItOnce() {
    var exchange = lifecycle()
    #expect(exchange.refuse(.forbidden("no")) == .fail(.forbidden("no")))
    #expect(exchange.refuse(.forbidden("again")) == .none)
  }

  @Test func eventsOutOfTurnAreIgnored() {
    var exchange = lifecycle()
    #expect(exchange.head(status: 200, retryAfter: nil, budget: budget(), now: 0) == .none)
    #expect(exchange.ended(error: nil, reusedConnection: false, budget: budget(), now: 0) == .none)
    #expect(exchange.streamRetracted(true, error: .cutBody) == .none)
    #expect(exchange.phase == .arrived)
  }
}

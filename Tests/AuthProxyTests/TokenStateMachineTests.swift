import Testing

@testable import AuthProxy

// MARK: - Builders

/// An arbitrary wall-clock start, far from zero so "now + x" arithmetic is realistic.
private let t0 = 1_800_000_000.0

private func tokenPair(
  issuedAt now: Double, lifetime: Double = 3600, access: String = "access-1", refresh: String = "refresh-1",
  refreshLifetime: Double = 7 * 86400
) -> TokenPair {
  TokenPair(
    accessToken: Secret(access), refreshToken: Secret(refresh), accessExpiresAt: now + lifetime,
    refreshExpiresAt: now + refreshLifetime, clientID: "client-1")
}

private func freshMachine(refreshBefore: Double = 300) -> TokenStateMachine {
  TokenStateMachine(refreshBefore: refreshBefore, backoffBase: 1, backoffCap: 60)
}

/// A machine that has logged in once, at `now`, with `pair`.
private func machineHolding(_ pair: TokenPair, at now: Double, refreshBefore: Double = 300) -> TokenStateMachine {
  var machine = freshMachine(refreshBefore: refreshBefore)
  _ = machine.handle(.tokenNeeded, now: now, jitter: 0)
  _ = machine.handle(.loginFinished(.success(pair)), now: now, jitter: 0)
  return machine
}

/// A machine whose first login has failed `failures` times in a row with `failure`.
private func machineAfterFailedLogins(_ failures: Int, failure: TokenFailure = .invalidCredentials) -> TokenStateMachine {
  var machine = freshMachine()
  _ = machine.handle(.tokenNeeded, now: t0, jitter: 0)
  for attempt in 0..<failures {
    if attempt > 0 { _ = machine.handle(.retryDue, now: t0, jitter: 0) }
    _ = machine.handle(.loginFinished(.failure(failure)), now: t0, jitter: 0)
  }
  return machine
}

private func publishedSnapshot(in actions: [TokenStateMachine.Action]) -> TokenSnapshot? {
  for case .publish(let snapshot) in actions { return snapshot }
  return nil
}

private func scheduledRefresh(in actions: [TokenStateMachine.Action]) -> Double? {
  for case .scheduleRefresh(let at) in actions { return at }
  return nil
}

private func scheduledRetry(in actions: [TokenStateMachine.Action]) -> Double? {
  for case .scheduleRetry(let after) in actions { return after }
  return nil
}

private func startsLogin(_ actions: [TokenStateMachine.Action]) -> Bool { actions.contains(.login) }

private func publishesUnavailable(_ actions: [TokenStateMachine.Action]) -> Bool {
  actions.contains { if case .publishUnavailable = $0 { true } else { false } }
}

// MARK: - Specification

@Suite struct TokenStateMachineTests {

  // MARK: Logging in

  @Test func firstTokenNeededStartsExactlyOneLogin() {
    var machine = freshMachine()
    let actions = machine.handle(.tokenNeeded, now: t0, jitter: 0)
    #expect(actions == [.login])
    #expect(machine.phase == .loggingIn)
    #expect(!machine.hasUsableToken(at: t0))
  }

  @Test func manyRequestsWhileLoggingInShareOneLogin() {
    var machine = freshMachine()
    var logins = machine.handle(.tokenNeeded, now: t0, jitter: 0).filter { $0 == .login }.count
    for i in 1...100 {
      let actions = machine.handle(.tokenNeeded, now: t0 + Double(i) * 0.001, jitter: 0)
      #expect(actions.isEmpty)
      logins += actions.filter { $0 == .login }.count
    }
    #expect(logins == 1)
    #expect(machine.phase == .loggingIn)
  }

  @Test func loginSuccessPublishesTheTokenAndSchedulesARefresh() throws {
    var machine = freshMachine()
    _ = machine.handle(.tokenNeeded, now: t0, jitter: 0)
    let pair = tokenPair(issuedAt: t0)
    let actions = machine.handle(.loginFinished(.success(pair)), now: t0, jitter: 0)

    #expect(actions.count == 2)
    let snapshot = try #require(publishedSnapshot(in: actions))
    #expect(snapshot.authorization.reveal == "Bearer access-1")
    #expect(snapshot.generation == 1)
    #expect(scheduledRefresh(in: actions) != nil)
    #expect(machine.phase == .valid)
    #expect(machine.pair == pair)
    #expect(machine.snapshot == snapshot)
    #expect(machine.hasUsableToken(at: t0))
  }

  @Test func refreshesRefreshBeforeAheadOfExpiry() {
    // 3600 s token, refreshBefore 300: expiry − 300 is later than half the lifetime.
    var machine = freshMachine(refreshBefore: 300)
    _ = machine.handle(.tokenNeeded, now: t0, jitter: 0)
    let actions = machine.handle(.loginFinished(.success(tokenPair(issuedAt: t0, lifetime: 3600))), now: t0, jitter: 0)
    #expect(scheduledRefresh(in: actions) == t0 + 3600 - 300)
  }

  @Test func shortLivedTokenRefreshesAtHalfItsLifetime() {
    // 4 s token, refreshBefore 300: expiry − 300 is in the past, so half the lifetime wins.
    var machine = freshMachine(refreshBefore: 300)
    _ = machine.handle(.tokenNeeded, now: t0, jitter: 0)
    let actions = machine.handle(.loginFinished(.success(tokenPair(issuedAt: t0, lifetime: 4))), now: t0, jitter: 0)
    #expect(scheduledRefresh(in: actions) == t0 + 2)
  }

  // MARK: The snapshot

  @Test func snapshotIsUsableUntilALittleBeforeExpiry() throws {
    let pair = tokenPair(issuedAt: t0, lifetime: 3600)
    let snapshot = try #require(machineHolding(pair, at: t0).snapshot)
    #expect(snapshot.usableUntil < pair.accessExpiresAt)
    #expect(snapshot.usableUntil >= pair.accessExpiresAt - 5)
    #expect(snapshot.isUsable(at: t0))
    #expect(snapshot.isUsable(at: snapshot.usableUntil - 0.001))
    #expect(!snapshot.isUsable(at: snapshot.usableUntil))
    #expect(!snapshot.isUsable(at: pair.accessExpiresAt))
  }

  @Test func shortLivedSnapshotIsUsableWhenIssuedAndNotAtExpiry() throws {
    let pair = tokenPair(issuedAt: t0, lifetime: 4)
    let snapshot = try #require(machineHolding(pair, at: t0).snapshot)
    #expect(snapshot.isUsable(at: t0))
    #expect(snapshot.usableUntil < pair.accessExpiresAt)
    #expect(!snapshot.isUsable(at: pair.accessExpiresAt))
  }

  @Test func tokenNeededWithAUsableTokenRepublishesIt() throws {
    var machine = machineHolding(tokenPair(issuedAt: t0), at: t0)
    let held = try #require(machine.snapshot)
    let actions = machine.handle(.tokenNeeded, now: t0 + 10, jitter: 0)
    #expect(actions == [.publish(held)])
    #expect(machine.phase == .valid)
  }

  // MARK: Refreshing

  @Test func refreshDueSendsTheStoredRefreshToken() {
    var machine = machineHolding(tokenPair(issuedAt: t0, refresh: "refresh-1"), at: t0)
    let actions = machine.handle(.refreshDue, now: t0 + 3300, jitter: 0)
    #expect(actions == [.refresh(Secret("refresh-1"))])
    #expect(machine.phase == .refreshing)
  }

  @Test func requestsDuringARefreshStartNothing() {
    var machine = machineHolding(tokenPair(issuedAt: t0), at: t0)
    _ = machine.handle(.refreshDue, now: t0 + 3300, jitter: 0)
    #expect(machine.handle(.tokenNeeded, now: t0 + 3301, jitter: 0).isEmpty)
    #expect(machine.handle(.refreshDue, now: t0 + 3302, jitter: 0).isEmpty)
  }

  @Test func refreshSuccessStoresTheNewPairAndBumpsTheGeneration() throws {
    var machine = machineHolding(tokenPair(issuedAt: t0, access: "access-1", refresh: "refresh-1"), at: t0)
    _ = machine.handle(.refreshDue, now: t0 + 3300, jitter: 0)
    let rotated = tokenPair(issuedAt: t0 + 3300, access: "access-2", refresh: "refresh-2")
    let actions = machine.handle(.refreshFinished(.success(rotated)), now: t0 + 3300, jitter: 0)

    let snapshot = try #require(publishedSnapshot(in: actions))
    #expect(snapshot.authorization.reveal == "Bearer access-2")
    #expect(snapshot.generation == 2)
    #expect(scheduledRefresh(in: actions) == t0 + 3300 + 3600 - 300)
    #expect(machine.pair == rotated)
    #expect(machine.phase == .valid)

    // The next refresh spends the rotated refresh token, never the revoked one.
    let next = machine.handle(.refreshDue, now: t0 + 6600, jitter: 0)
    #expect(next == [.refresh(Secret("refresh-2"))])
  }

  @Test func refreshFailureFallsBackToLogin() {
    var machine = machineHolding(tokenPair(issuedAt: t0), at: t0)
    _ = machine.handle(.refreshDue, now: t0 + 3300, jitter: 0)
    let actions = machine.handle(.refreshFinished(.failure(.refreshRejected)), now: t0 + 3300, jitter: 0)
    #expect(actions == [.login])
    #expect(machine.phase == .loggingIn)
  }

  @Test func expiredRefreshTokenLogsInInsteadOfRefreshing() {
    let pair = tokenPair(issuedAt: t0, lifetime: 3600, refreshLifetime: 1800)
    var machine = machineHolding(pair, at: t0)
    let actions = machine.handle(.refreshDue, now: t0 + 3300, jitter: 0)
    #expect(actions == [.login])
  }

  @Test func tokenNeededAfterExpiryRenewsInsteadOfSendingTheExpiredToken() {
    var machine = machineHolding(tokenPair(issuedAt: t0, lifetime: 3600), at: t0)
    let actions = machine.handle(.tokenNeeded, now: t0 + 3601, jitter: 0)
    #expect(actions == [.refresh(Secret("refresh-1"))])
    #expect(!machine.hasUsableToken(at: t0 + 3601))
  }

  // MARK: An upstream 401

  @Test func rejectionOfTheCurrentTokenRenewsItOnceForEveryone() {
    var machine = machineHolding(tokenPair(issuedAt: t0, refresh: "refresh-1"), at: t0)
    let first = machine.handle(.tokenRejected(generation: 1), now: t0 + 60, jitter: 0)
    #expect(first == [.refresh(Secret("refresh-1"))])
    for _ in 0..<10 {
      #expect(machine.handle(.tokenRejected(generation: 1), now: t0 + 60, jitter: 0).isEmpty)
    }
    #expect(machine.handle(.tokenNeeded, now: t0 + 60, jitter: 0).isEmpty)
  }

  @Test func rejectedTokenIsNeverHandedOutAgain() {
    var machine = machineHolding(tokenPair(issuedAt: t0), at: t0)
    _ = machine.handle(.tokenRejected(generation: 1), now: t0 + 60, jitter: 0)
    #expect(!machine.hasUsableToken(at: t0 + 60))
    #expect(machine.snapshot?.isUsable(at: t0 + 60) != true)
  }

  @Test func rejectionOfAnAlreadyReplacedTokenOnlyRepublishesTheNewOne() throws {
    var machine = machineHolding(tokenPair(issuedAt: t0), at: t0)
    _ = machine.handle(.refreshDue, now: t0 + 3300, jitter: 0)
    _ = machine.handle(
      .refreshFinished(.success(tokenPair(issuedAt: t0 + 3300, access: "access-2", refresh: "refresh-2"))), now: t0 + 3300,
      jitter: 0)
    let current = try #require(machine.snapshot)
    let actions = machine.handle(.tokenRejected(generation: 1), now: t0 + 3301, jitter: 0)
    #expect(actions == [.publish(current)])
    #expect(machine.hasUsableToken(at: t0 + 3301))
  }

  @Test func rotatedPairReplacesTheCurrentOne() throws {
    var machine = machineHolding(tokenPair(issuedAt: t0, access: "old"), at: t0)
    let actions = machine.handle(.rotated(tokenPair(issuedAt: t0 + 60, access: "new")), now: t0 + 60, jitter: 0)
    let snapshot = try #require(publishedSnapshot(in: actions))
    #expect(snapshot.authorization.reveal == "Bearer new")
    #expect(snapshot.generation == 2)
    #expect(scheduledRefresh(in: actions) == t0 + 60 + 3600 - 300)
  }

  // MARK: Failing logins and backoff

  @Test func loginFailurePublishesUnavailableAndSchedulesARetry() {
    var machine = freshMachine()
    _ = machine.handle(.tokenNeeded, now: t0, jitter: 0)
    let actions = machine.handle(.loginFinished(.failure(.invalidCredentials)), now: t0, jitter: 0)
    #expect(actions == [.publishUnavailable(.invalidCredentials), .scheduleRetry(after: 0.5)])
    #expect(machine.phase == .backingOff)
    #expect(machine.lastFailure == .invalidCredentials)
    #expect(machine.consecutiveFailures == 1)
  }

  @Test func backoffDoublesFromOneSecondAndIsCappedAtSixty() {
    // The ceiling of the n-th wait: 1, 2, 4, … capped at 60; jitter 0 waits half of it.
    let ceilings: [Double] = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    for (index, ceiling) in ceilings.enumerated() {
      let machine = machineAfterFailedLogins(index + 1)
      #expect(machine.backoff(jitter: 0, retryAfter: nil) == ceiling / 2, "failure \(index + 1)")
      let longest = machine.backoff(jitter: 0.999_999, retryAfter: nil)
      #expect(longest <= ceiling && longest > ceiling * 0.99, "failure \(index + 1)")
    }
  }

  @Test(arguments: [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999])
  func jitterKeepsTheWaitInTheUpperHalf(jitter: Double) {
    let machine = machineAfterFailedLogins(4)  // ceiling 8 s
    let wait = machine.backoff(jitter: jitter, retryAfter: nil)
    #expect(wait >= 4 && wait <= 8)
  }

  @Test func scheduledRetriesGrowWithEachFailure() {
    var machine = freshMachine()
    _ = machine.handle(.tokenNeeded, now: t0, jitter: 0)
    var waits: [Double] = []
    for _ in 0..<5 {
      let actions = machine.handle(.loginFinished(.failure(.invalidCredentials)), now: t0, jitter: 0)
      if let wait = scheduledRetry(in: actions) { waits.append(wait) }
      _ = machine.handle(.retryDue, now: t0, jitter: 0)
    }
    #expect(waits == [0.5, 1, 2, 4, 8])
  }

  @Test func honoursRetryAfter() throws {
    var machine = freshMachine()
    _ = machine.handle(.tokenNeeded, now: t0, jitter: 0)
    let actions = machine.handle(.loginFinished(.failure(.rateLimited(retryAfter: 30))), now: t0, jitter: 0)
    let wait = try #require(scheduledRetry(in: actions))
    #expect(wait >= 30)
    #expect(actions.contains(.publishUnavailable(.rateLimited(retryAfter: 30))))
  }

  @Test func retryAfterNeverShortensTheBackoff() {
    let machine = machineAfterFailedLogins(8, failure: .rateLimited(retryAfter: 1))  // ceiling 60 s
    #expect(machine.backoff(jitter: 0, retryAfter: 1) == 30)
  }

  @Test func requestsWhileBackingOffDoNotStartALogin() {
    var machine = freshMachine()
    _ = machine.handle(.tokenNeeded, now: t0, jitter: 0)
    _ = machine.handle(.loginFinished(.failure(.ipNotAuthorized)), now: t0, jitter: 0)
    for i in 1...50 {
      let actions = machine.handle(.tokenNeeded, now: t0 + Double(i) * 0.01, jitter: 0)
      #expect(actions == [.publishUnavailable(.ipNotAuthorized)])
    }
    #expect(machine.phase == .backingOff)
  }

  @Test func retryDueLogsInAgain() {
    var machine = machineAfterFailedLogins(1)
    let actions = machine.handle(.retryDue, now: t0 + 0.5, jitter: 0)
    #expect(actions == [.login])
    #expect(machine.phase == .loggingIn)
  }

  @Test func staleTimersAreIgnored() {
    var machine = machineHolding(tokenPair(issuedAt: t0), at: t0)
    #expect(machine.handle(.retryDue, now: t0 + 1, jitter: 0).isEmpty)
    var backingOff = machineAfterFailedLogins(1)
    #expect(backingOff.handle(.refreshDue, now: t0 + 1, jitter: 0).isEmpty)
    #expect(machine.phase == .valid)
    #expect(backingOff.phase == .backingOff)
  }

  @Test func successfulLoginAfterFailuresResetsTheBackoff() {
    var machine = machineAfterFailedLogins(5)
    _ = machine.handle(.retryDue, now: t0 + 100, jitter: 0)
    _ = machine.handle(.loginFinished(.success(tokenPair(issuedAt: t0 + 100))), now: t0 + 100, jitter: 0)
    #expect(machine.consecutiveFailures == 0)
    #expect(machine.lastFailure == nil)
    #expect(machine.backoff(jitter: 0, retryAfter: nil) == 0.5)
  }

  @Test func failedLoginWhileATokenIsStillUsableKeepsServingIt() throws {
    var machine = machineHolding(tokenPair(issuedAt: t0), at: t0)
    let held = try #require(machine.snapshot)
    _ = machine.handle(.refreshDue, now: t0 + 3300, jitter: 0)
    _ = machine.handle(.refreshFinished(.failure(.refreshRejected)), now: t0 + 3300, jitter: 0)
    let actions = machine.handle(.loginFinished(.failure(.invalidCredentials)), now: t0 + 3300, jitter: 0)

    #expect(!publishesUnavailable(actions))
    #expect(scheduledRetry(in: actions) != nil)
    #expect(machine.handle(.tokenNeeded, now: t0 + 3301, jitter: 0) == [.publish(held)])
  }

  // MARK: A token expired on arrival

  @Test(arguments: [0.0, -1, -3600])
  func loginWithAnExpiredTokenBacksOffInsteadOfRefreshingInALoop(lifetime: Double) throws {
    var machine = freshMachine()
    _ = machine.handle(.tokenNeeded, now: t0, jitter: 0)
    let expired = tokenPair(issuedAt: t0, lifetime: lifetime)
    let actions = machine.handle(.loginFinished(.success(expired)), now: t0, jitter: 0)

    #expect(!actions.contains { if case .refresh = $0 { true } else { false } })
    #expect(!actions.contains(.scheduleRefresh(at: t0)))
    #expect(scheduledRefresh(in: actions) == nil)
    #expect(!startsLogin(actions))
    #expect(publishedSnapshot(in: actions) == nil)
    #expect(actions.contains(.publishUnavailable(.expiredOnArrival)))
    let wait = try #require(scheduledRetry(in: actions))
    #expect(wait > 0)
    #expect(machine.phase == .backingOff)
    #expect(machine.lastFailure == .expiredOnArrival)
    #expect(machine.consecutiveFailures == 1)
    #expect(!machine.hasUsableToken(at: t0))
    // Requests meanwhile are answered "unavailable" and start nothing.
    #expect(machine.handle(.tokenNeeded, now: t0 + 0.1, jitter: 0) == [.publishUnavailable(.expiredOnArrival)])
  }

  @Test func tokensExpiredOnArrivalAreRetriedWithGrowingBackoff() {
    var machine = freshMachine()
    var now = t0
    var waits: [Double] = []
    var actions = machine.handle(.tokenNeeded, now: now, jitter: 0)
    for _ in 0..<5 {
      #expect(actions == [.login])
      actions = machine.handle(.loginFinished(.success(tokenPair(issuedAt: now, lifetime: -5))), now: now, jitter: 0)
      guard let wait = scheduledRetry(in: actions) else {
        Issue.record("no retry scheduled: \(actions)")
        return
      }
      waits.append(wait)
      now += wait
      actions = machine.handle(.retryDue, now: now, jitter: 0)
    }
    #expect(waits == [0.5, 1, 2, 4, 8])
  }

  @Test func refreshReturningAnExpiredTokenBacksOff() throws {
    var machine = machineHolding(tokenPair(issuedAt: t0, lifetime: 3600), at: t0)
    let now = t0 + 3700  // the held token has expired too
    #expect(machine.handle(.tokenNeeded, now: now, jitter: 0) == [.refresh(Secret("refresh-1"))])
    let actions = machine.handle(.refreshFinished(.success(tokenPair(issuedAt: now, lifetime: 0))), now: now, jitter: 0)

    #expect(!actions.contains { if case .refresh = $0 { true } else { false } })
    #expect(scheduledRefresh(in: actions) == nil)
    #expect(actions.contains(.publishUnavailable(.expiredOnArrival)))
    #expect(try #require(scheduledRetry(in: actions)) > 0)
    #expect(machine.phase == .backingOff)
  }

  @Test func expiredRotatedPairKeepsServingTheUsableToken() throws {
    var machine = machineHolding(tokenPair(issuedAt: t0, access: "old"), at: t0)
    let held = try #require(machine.snapshot)
    let actions = machine.handle(.rotated(tokenPair(issuedAt: t0 + 60, lifetime: -1, access: "new")), now: t0 + 60, jitter: 0)

    #expect(publishedSnapshot(in: actions) == nil)
    #expect(scheduledRefresh(in: actions) == nil)
    #expect(!publishesUnavailable(actions))
    #expect(try #require(scheduledRetry(in: actions)) > 0)
    #expect(machine.phase == .backingOff)
    #expect(machine.snapshot == held)
    #expect(machine.handle(.tokenNeeded, now: t0 + 61, jitter: 0) == [.publish(held)])
  }

  @Test func tokenExpiringJustAfterArrivalIsStillAccepted() throws {
    var machine = freshMachine()
    _ = machine.handle(.tokenNeeded, now: t0, jitter: 0)
    let actions = machine.handle(.loginFinished(.success(tokenPair(issuedAt: t0, lifetime: 0.5))), now: t0, jitter: 0)
    #expect(publishedSnapshot(in: actions) != nil)
    #expect(try #require(scheduledRefresh(in: actions)) > t0)
    #expect(machine.phase == .valid)
  }

  @Test func loginStormStaysWithinTheBackoffSchedule() {
    // Ten simulated seconds of a request every 10 ms against an API that refuses every login;
    // each scheduled retry fires exactly when it is due.
    var machine = freshMachine()
    var loginTimes: [Double] = []
    var retryAt: Double?
    for step in 0...1000 {
      let now = t0 + Double(step) / 100
      var actions: [TokenStateMachine.Action] = []
      if let due = retryAt, now >= due {
        retryAt = nil
        actions += machine.handle(.retryDue, now: now, jitter: 0)
      }
      actions += machine.handle(.tokenNeeded, now: now, jitter: 0)
      for action in actions where action == .login {
        loginTimes.append(now - t0)
        let outcome = machine.handle(.loginFinished(.failure(.invalidCredentials)), now: now, jitter: 0)
        if let wait = scheduledRetry(in: outcome) { retryAt = now + wait }
      }
    }
    #expect(loginTimes.count >= 2)
    #expect(loginTimes.count <= 5)
    let gaps = zip(loginTimes.dropFirst(), loginTimes).map { $0 - $1 }
    #expect(zip(gaps.dropFirst(), gaps).allSatisfy { $0 > $1 }, "gaps \(gaps) must grow")
  }
}

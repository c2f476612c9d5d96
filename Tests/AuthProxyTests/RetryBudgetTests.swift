import Testing

@testable import AuthProxy

/// SPEC §4's guard against retry storms: retries may be at most 20 % of the requests of a
/// sliding window (10 buckets of 1 s by default), and always at least 3. Time is given
/// explicitly, so these tests never sleep.
@Suite struct RetryBudgetTests {
  /// An arbitrary monotonic time, well past zero.
  let t0 = 5_000.0

  /// How many retries the budget grants, asked one by one at `now`, until it refuses (or `cap`).
  func grants(_ budget: RetryBudget, now: Double, cap: Int = 1000) -> Int {
    var granted = 0
    while granted < cap, budget.allowRetry(now: now) { granted += 1 }
    return granted
  }

  func record(_ budget: RetryBudget, _ count: Int, now: Double) {
    for _ in 0..<count { budget.recordRequest(now: now) }
  }

  @Test func withNoTrafficTheMinimumOfThreeIsGranted() {
    let budget = RetryBudget()
    #expect(grants(budget, now: t0) == 3)
    #expect(!budget.allowRetry(now: t0 + 0.5), "spent for the window")
  }

  @Test func withLittleTrafficTheMinimumStillHolds() {
    let budget = RetryBudget()
    record(budget, 10, now: t0)  // 20 % of 10 is 2: the minimum of 3 wins
    #expect(grants(budget, now: t0) == 3)
  }

  @Test func retriesAreAtMostTwentyPercentOfTheRequestsInTheWindow() {
    let budget = RetryBudget()
    record(budget, 100, now: t0)
    #expect(grants(budget, now: t0) == 20)
    // Requests spread over the window count together.
    let spread = RetryBudget()
    for second in 0..<10 { record(spread, 10, now: t0 + Double(second) + 0.5) }
    #expect(grants(spread, now: t0 + 9.9) == 20)
  }

  @Test func aShareIsRoundedDownNeverUp() {
    let budget = RetryBudget()
    record(budget, 24, now: t0)  // 4.8 → 4
    #expect(grants(budget, now: t0) == 4)
  }

  @Test func newRequestsEarnNewRetries() {
    let budget = RetryBudget()
    record(budget, 20, now: t0)
    #expect(grants(budget, now: t0) == 4)
    record(budget, 4, now: t0 + 0.1)  // 24 requests: still 4
    #expect(!budget.allowRetry(now: t0 + 0.1))
    record(budget, 1, now: t0 + 0.2)  // 25 requests: 5
    #expect(grants(budget, now: t0 + 0.2) == 1)
  }

  @Test func theWindowSlidesRequestsAndRetriesOut() {
    let budget = RetryBudget()
    record(budget, 100, now: t0)
    #expect(grants(budget, now: t0) == 20)
    #expect(!budget.allowRetry(now: t0 + 9.99), "still inside the 10 s window")
    // Ten seconds on, the requests and the retries of t0 have left the window together:
    // only the minimum is left.
    #expect(grants(budget, now: t0 + 10) == 3)
  }

  @Test func onlyTheOldestBucketsLeaveTheWindow() {
    let budget = RetryBudget()
    record(budget, 50, now: t0)
    record(budget, 50, now: t0 + 5)
    #expect(grants(budget, now: t0 + 5) == 20)  // all 20 retries fall in the bucket of t0+5
    // At t0+10 the first 50 requests are out, the second 50 and the 20 retries are in:
    // 20 used of max(3, 10) allowed.
    #expect(!budget.allowRetry(now: t0 + 10.5))
    record(budget, 50, now: t0 + 10.5)  // 100 requests in the window again: 20 allowed, 20 used
    #expect(!budget.allowRetry(now: t0 + 10.5))
    record(budget, 5, now: t0 + 11)  // 105: 21 allowed
    #expect(grants(budget, now: t0 + 11) == 1)
    // At t0+15 the 20 retries of t0+5 leave; 55 requests remain (11 allowed, 1 used).
    #expect(grants(budget, now: t0 + 15) == 10)
  }

  @Test func aLongQuietSpellResetsEverything() {
    let budget = RetryBudget()
    record(budget, 1000, now: t0)
    #expect(grants(budget, now: t0) == 200)
    #expect(grants(budget, now: t0 + 3600) == 3)
  }

  @Test func aClockThatStepsBackDoesNotRefillTheBudget() {
    let budget = RetryBudget()
    record(budget, 10, now: t0)
    #expect(grants(budget, now: t0) == 3)
    #expect(!budget.allowRetry(now: t0 - 30))
    #expect(!budget.allowRetry(now: t0))
  }

  @Test func otherSharesMinimumsAndWindows() {
    let strict = RetryBudget(share: 0.5, minimum: 0, buckets: 2, bucketSeconds: 0.5)
    #expect(!strict.allowRetry(now: t0), "no minimum, no traffic: no retry")
    record(strict, 4, now: t0)
    #expect(grants(strict, now: t0 + 0.6) == 2)
    #expect(grants(strict, now: t0 + 1.0) == 0, "window of 2 × 0.5 s: the requests of t0 are gone")
  }
}

/// `Retry-After` as the API may send it (RFC 9110 §10.2.3): delay-seconds or an HTTP date.
@Suite struct RetryAfterTests {
  /// Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example date).
  let example = 784_111_777.0

  @Test func delaySecondsAreTakenAsTheyAre() {
    #expect(RetryAfter.seconds("0", now: example) == 0)
    #expect(RetryAfter.seconds("1", now: example) == 1)
    #expect(RetryAfter.seconds("120", now: example) == 120)
  }

  @Test func anHTTPDateIsTheTimeUntilThen() {
    #expect(RetryAfter.seconds("Sun, 06 Nov 1994 08:49:37 GMT", now: example - 5) == 5)
    #expect(RetryAfter.seconds("Sun, 06 Nov 1994 08:50:37 GMT", now: example) == 60)
    #expect(RetryAfter.seconds("Mon, 07 Nov 1994 08:49:37 GMT", now: example) == 86400)
  }

  @Test func aDateInThePastMeansNoWait() {
    #expect(RetryAfter.seconds("Sun, 06 Nov 1994 08:49:37 GMT", now: example + 100) == 0)
  }

  @Test(arguments: [
    "", "soon", "-1", "inf", "nan", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 UTC",
    "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT",
    "Sun, 6 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun, +6 Nov 1994 08:49:37 GMT",
  ])
  func anythingElseIsNotAWait(value: String) {
    #expect(RetryAfter.seconds(value, now: example) == nil, "\(value)")
  }
}

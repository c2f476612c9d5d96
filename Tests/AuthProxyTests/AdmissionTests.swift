import Testing

@testable import AuthProxy

/// The admission stage without I/O: time is given explicitly, so nothing sleeps.
@Suite struct AdmissionTests {
  final class Request {
    let name: String
    init(_ name: String) { self.name = name }
  }

  let t0 = 1_000.0

  func names(_ items: [Request]) -> [String] { items.map(\.name) }

  @Test func parsesRates() {
    #expect(UpstreamLimits.parseRate("10/s") == 10)
    #expect(UpstreamLimits.parseRate("5") == 5)
    #expect(UpstreamLimits.parseRate("120/m") == 2)
    #expect(UpstreamLimits.parseRate("3600/h") == 1)
    #expect(UpstreamLimits.parseRate("0/s") == nil)
    #expect(UpstreamLimits.parseRate("-1/s") == nil)
    #expect(UpstreamLimits.parseRate("10/d") == nil)
    #expect(UpstreamLimits.parseRate("ten/s") == nil)
    #expect(UpstreamLimits.parseRate("nan") == nil)
  }

  @Test func tokenBucketGrantsTheBurstThenTheRate() {
    var bucket = TokenBucket(rate: 2, capacity: 3)
    bucket.refill(now: t0)
    for _ in 0..<3 {
      #expect(bucket.secondsUntilToken == 0)
      bucket.take()
    }
    #expect(bucket.secondsUntilToken == 0.5)
    bucket.refill(now: t0 + 0.25)
    #expect(bucket.secondsUntilToken == 0.25)
    bucket.refill(now: t0 + 10)
    #expect(bucket.tokens == 3, "never more than the burst")
  }

  @Test func noLimitsAdmitEverythingAndNeedNoAdmission() {
    let ledger = AdmissionLedger(global: UpstreamLimits())
    #expect(!ledger.mustAdmit)
    let admission = Admission<Request>(ledger: ledger)
    for i in 0..<100 { #expect(admission.admit(Request("\(i)"), app: nil, limits: nil, now: t0) == .admitted) }
  }

  @Test func concurrencyGateQueuesFIFOAndReleasesInOrder() {
    let admission = Admission<Request>(ledger: AdmissionLedger(global: UpstreamLimits(maxConcurrency: 2)))
    let r = (0..<5).map { Request("r\($0)") }
    #expect(admission.admit(r[0], app: nil, limits: nil, now: t0) == .admitted)
    #expect(admission.admit(r[1], app: nil, limits: nil, now: t0) == .admitted)
    for i in 2..<5 { #expect(admission.admit(r[i], app: nil, limits: nil, now: t0) == .queued) }
    var pumped = admission.pump(now: t0)
    #expect(pumped.admitted.isEmpty)
    #expect(pumped.wakeIn == nil, "only a finished request makes room")
    admission.release(r[1])
    pumped = admission.pump(now: t0)
    #expect(names(pumped.admitted) == ["r2"])
    admission.release(r[0])
    admission.release(r[2])
    pumped = admission.pump(now: t0)
    #expect(names(pumped.admitted) == ["r3", "r4"])
    #expect(admission.queued == 0)
  }

  @Test func rateLimitQueuesUntilTheNextToken() {
    let admission = Admission<Request>(ledger: AdmissionLedger(global: UpstreamLimits(ratePerSecond: 8, burst: 2)))
    let r = (0..<4).map { Request("r\($0)") }
    #expect(admission.admit(r[0], app: nil, limits: nil, now: t0) == .admitted)
    #expect(admission.admit(r[1], app: nil, limits: nil, now: t0) == .admitted)
    #expect(admission.admit(r[2], app: nil, limits: nil, now: t0) == .queued)
    #expect(admission.admit(r[3], app: nil, limits: nil, now: t0) == .queued)
    var pumped = admission.pump(now: t0)
    #expect(pumped.admitted.isEmpty)
    #expect(pumped.wakeIn == 0.125)
    pumped = admission.pump(now: t0 + 0.125)
    #expect(names(pumped.admitted) == ["r2"])
    pumped = admission.pump(now: t0 + 0.25)
    #expect(names(pumped.admitted) == ["r3"])
  }

  @Test func queueBoundRefusesAtOnceWithRetryAfter() {
    let admission = Admission<Request>(ledger: AdmissionLedger(global: UpstreamLimits(ratePerSecond: 1, burst: 1)))
    #expect(admission.admit(Request("first"), app: nil, limits: nil, now: t0) == .admitted)
    for i in 0..<Admission<Request>.queueBound {
      #expect(admission.admit(Request("q\(i)"), app: nil, limits: nil, now: t0) == .queued)
    }
    guard case .refused(let retryAfter) = admission.admit(Request("over"), app: nil, limits: nil, now: t0) else {
      Issue.record("the request past the bound was not refused")
      return
    }
    #expect(retryAfter >= Admission<Request>.queueBound, "the waiting requests go first at 1/s")
  }

  @Test func retryAfterIsAtLeastOneSecond() {
    let admission = Admission<Request>(ledger: AdmissionLedger(global: UpstreamLimits(maxConcurrency: 1)))
    #expect(admission.retryAfter(app: nil, now: t0) == 1)
  }

  @Test func anAppSaturatingItsOwnLimitDoesNotStarveAnother() {
    let admission = Admission<Request>(ledger: AdmissionLedger(global: UpstreamLimits(maxConcurrency: 10)))
    let billing = UpstreamLimits(maxConcurrency: 1)
    let reports = UpstreamLimits(ratePerSecond: 128, burst: 5)
    let b = (0..<4).map { Request("b\($0)") }
    #expect(admission.admit(b[0], app: "billing", limits: billing, now: t0) == .admitted)
    for i in 1..<4 { #expect(admission.admit(b[i], app: "billing", limits: billing, now: t0) == .queued) }
    // Billing's queue is stuck on its own limit; reports still goes, at once.
    var admitted: [String] = []
    for i in 0..<5 {
      let r = Request("r\(i)")
      let decision = admission.admit(r, app: "reports", limits: reports, now: t0)
      if decision == .admitted { admitted.append(r.name) }
      if decision == .queued { admitted += names(admission.pump(now: t0).admitted) }
    }
    #expect(admitted == ["r0", "r1", "r2", "r3", "r4"])
    #expect(admission.waiting(app: "billing") == 3)
    // Reports is now at its own rate limit, billing at its concurrency: each waits for its own.
    #expect(admission.admit(Request("r5"), app: "reports", limits: reports, now: t0) == .queued)
    let pumped = admission.pump(now: t0)
    #expect(pumped.admitted.isEmpty)
    #expect(pumped.wakeIn == 1.0 / 128)
    admission.release(b[0])
    #expect(names(admission.pump(now: t0).admitted) == ["b1"])
    #expect(names(admission.pump(now: t0 + 1.0 / 128).admitted) == ["r5"])
  }

  @Test func roundRobinAcrossAppsWhenTheGlobalLimitIsTheBottleneck() {
    let admission = Admission<Request>(ledger: AdmissionLedger(global: UpstreamLimits(maxConcurrency: 1)))
    let generous = UpstreamLimits(maxConcurrency: 100)
    let first = Request("first")
    #expect(admission.admit(first, app: "a", limits: generous, now: t0) == .admitted)
    // App a floods the queue before b's two requests arrive.
    let a = (0..<6).map { Request("a\($0)") }
    for item in a { #expect(admission.admit(item, app: "a", limits: generous, now: t0) == .queued) }
    let b = (0..<2).map { Request("b\($0)") }
    for item in b { #expect(admission.admit(item, app: "b", limits: generous, now: t0) == .queued) }
    var order: [String] = []
    var current = first
    for _ in 0..<8 {
      admission.release(current)
      let pumped = admission.pump(now: t0).admitted
      #expect(pumped.count == 1)
      guard let admitted = pumped.first else { break }
      order.append(admitted.name)
      current = admitted
    }
    // b goes first: a was let in last ("first"). Then they alternate until b has no more.
    #expect(order == ["b0", "a0", "b1", "a1", "a2", "a3", "a4", "a5"])
  }

  @Test func anAppMustPassTheGlobalLimitToo() {
    let ledger = AdmissionLedger(global: UpstreamLimits(maxConcurrency: 2))
    let admission = Admission<Request>(ledger: ledger)
    let mine = UpstreamLimits(maxConcurrency: 10)
    #expect(admission.admit(Request("x"), app: "a", limits: mine, now: t0) == .admitted)
    #expect(admission.admit(Request("y"), app: "b", limits: mine, now: t0) == .admitted)
    #expect(admission.admit(Request("z"), app: "a", limits: mine, now: t0) == .queued)
    #expect(ledger.inFlight(app: nil) == 2)
    #expect(ledger.inFlight(app: "a") == 1)
  }

  @Test func workersShareOneLedger() {
    // Two workers' stages over one ledger: 4/s with a burst of 4 is 4 for the process, not per worker.
    let ledger = AdmissionLedger(global: UpstreamLimits(ratePerSecond: 4, burst: 4))
    let one = Admission<Request>(ledger: ledger)
    let two = Admission<Request>(ledger: ledger)
    var admitted = 0
    for i in 0..<8 {
      let stage = i % 2 == 0 ? one : two
      if stage.admit(Request("\(i)"), app: nil, limits: nil, now: t0) == .admitted { admitted += 1 }
    }
    #expect(admitted == 4)
  }

  @Test func aTimedOutWaiterLeavesTheQueue() {
    let admission = Admission<Request>(ledger: AdmissionLedger(global: UpstreamLimits(maxConcurrency: 1)))
    let first = Request("first")
    let late = Request("late")
    let next = Request("next")
    #expect(admission.admit(first, app: nil, limits: nil, now: t0) == .admitted)
    #expect(admission.admit(late, app: nil, limits: nil, now: t0) == .queued)
    #expect(admission.admit(next, app: nil, limits: nil, now: t0) == .queued)
    #expect(admission.remove(late, app: nil))
    #expect(!admission.remove(late, app: nil))
    admission.release(first)
    #expect(names(admission.pump(now: t0).admitted) == ["next"])
  }

  @Test func upstreamPauseHoldsEveryoneAndIsCapped() {
    let ledger = AdmissionLedger(global: UpstreamLimits())
    let admission = Admission<Request>(ledger: ledger)
    #expect(ledger.pause(seconds: 3600, now: t0) == AdmissionLedger.maxPause)
    #expect(ledger.mustAdmit)
    #expect(admission.admit(Request("a"), app: nil, limits: nil, now: t0 + 1) == .queued)
    let pumped = admission.pump(now: t0 + 1)
    #expect(pumped.admitted.isEmpty)
    #expect(pumped.wakeIn == AdmissionLedger.maxPause - 1)
    #expect(admission.retryAfter(app: nil, now: t0 + 1) == Int(AdmissionLedger.maxPause) - 1)
    // A shorter pause does not shorten the longer one.
    ledger.pause(seconds: 2, now: t0 + 1)
    #expect(admission.pump(now: t0 + 5).admitted.isEmpty)
    #expect(names(admission.pump(now: t0 + AdmissionLedger.maxPause).admitted) == ["a"])
    #expect(!ledger.mustAdmit, "an expired pause is cleared")
  }

  @Test func forgettingRemovedAppsResetsTheirState() {
    let ledger = AdmissionLedger(global: UpstreamLimits())
    let admission = Admission<Request>(ledger: ledger)
    let limits = UpstreamLimits(maxConcurrency: 1)
    #expect(admission.admit(Request("a"), app: "gone", limits: limits, now: t0) == .admitted)
    #expect(ledger.inFlight(app: "gone") == 1)
    ledger.keepApps(["other"])
    #expect(ledger.inFlight(app: "gone") == 0)
  }

  /// A soak over simulated time: two apps with different limits on two workers' stages over
  /// one ledger, both asking for far more than they may have for 10 s. Neither exceeds its
  /// limits, the global ones hold, and neither starves the other.
  @Test func twoAppsOnTwoWorkersNeitherExceedsNorStarves() {
    // batch and web together want 70/s of a global 60/s; worker 0 (batch) is always pumped
    // first, so without turns across workers batch would take every global token it can.
    let ledger = AdmissionLedger(global: UpstreamLimits(maxConcurrency: 4, ratePerSecond: 60, burst: 5))
    let workers = [Admission<Request>(ledger: ledger), Admission<Request>(ledger: ledger)]
    let limits = [
      "batch": UpstreamLimits(maxConcurrency: 3, ratePerSecond: 50, burst: 5),
      "web": UpstreamLimits(maxConcurrency: 2, ratePerSecond: 20, burst: 2),
    ]
    var admittedAt: [String: [Double]] = ["batch": [], "web": []]
    var running: [(request: Request, app: String, worker: Int, ends: Double)] = []
    var inFlight: [String: Int] = ["batch": 0, "web": 0]
    var peak: [String: Int] = ["batch": 0, "web": 0]
    var peakTotal = 0
    func started(_ items: [Request], worker: Int, now: Double) {
      for item in items {
        let app = String(item.name.prefix { $0 != "-" })
        admittedAt[app]!.append(now)
        running.append((item, app, worker, now + 0.03))
        inFlight[app]! += 1
        peak[app] = max(peak[app]!, inFlight[app]!)
        peakTotal = max(peakTotal, inFlight.values.reduce(0, +))
      }
    }
    var serial = 0
    for tick in 0..<10_000 {
      let now = t0 + Double(tick) / 1000
      // Finished requests free their slots on their own worker.
      for done in running.filter({ $0.ends <= now }) {
        workers[done.worker].release(done.request)
        inFlight[done.app]! -= 1
      }
      running.removeAll { $0.ends <= now }
      // batch offers 200/s on worker 0, web 100/s on worker 1 (more than either may have).
      for (app, worker, every) in [("batch", 0, 5), ("web", 1, 10)] where tick % every == 0 {
        serial += 1
        let request = Request("\(app)-\(serial)")
        if workers[worker].admit(request, app: app, limits: limits[app], now: now) == .admitted {
          started([request], worker: worker, now: now)
        }
      }
      for (index, stage) in workers.enumerated() { started(stage.pump(now: now).admitted, worker: index, now: now) }
    }
    #expect(peak["batch"]! <= 3 && peak["web"]! <= 2 && peakTotal <= 4)
    for (app, rate, burst) in [("batch", 50.0, 5.0), ("web", 20.0, 2.0)] {
      let times = admittedAt[app]!
      // In any one-second window, no more than the rate plus the burst.
      var worst = 0
      for (i, start) in times.enumerated() { worst = max(worst, times[i...].prefix { $0 < start + 1 }.count) }
      #expect(Double(worst) <= rate + burst, "\(app): \(worst) in one second")
    }
    let total = admittedAt.values.map(\.count).reduce(0, +)
    #expect(Double(total) <= 60 * 10 + 5, "the global rate holds")
    // web is held only by its own 20/s: it gets nearly all of it although batch asks for more.
    #expect(admittedAt["web"]!.count >= 190, "web got \(admittedAt["web"]!.count) in 10 s")
    #expect(admittedAt["batch"]!.count >= 350, "batch got \(admittedAt["batch"]!.count) in 10 s")
  }
}

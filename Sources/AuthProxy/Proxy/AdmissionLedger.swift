import Synchronization

/// Who held a request back.
enum AdmissionBlocker: Equatable {
  /// The app's own limits: other apps may still go.
  case app
  /// The global limits or an upstream pause: nobody goes.
  case global
}

enum AdmissionVerdict: Equatable {
  case admitted
  /// `wait`: seconds until a token is expected or the pause ends; nil when only a finished
  /// request can make room (a concurrency slot).
  case blocked(AdmissionBlocker, wait: Double?)
}

/// The limits' counters, shared by every worker so that `--rate-limit 10/s` means 10 a second
/// for the process, not per worker: token buckets and in-flight counts behind one lock (taken
/// only when a limit is set or the upstream asked for a pause), and the upstream's pause
/// deadline as an atomic read on every request.
public final class AdmissionLedger: Sendable {
  struct Slot {
    var limits: UpstreamLimits
    var bucket: TokenBucket?
    var inFlight = 0

    init(_ limits: UpstreamLimits) {
      self.limits = limits
      bucket = limits.ratePerSecond.map { TokenBucket(rate: $0, capacity: limits.bucketSize) }
    }

    /// Room for one more now? nil if so, else the wait (nil inside: until a slot frees).
    mutating func blocked(now: Double) -> Double?? {
      if let max = limits.maxConcurrency, inFlight >= max { return .some(nil) }
      if bucket != nil {
        bucket!.refill(now: now)
        let wait = bucket!.secondsUntilToken
        if wait > 0 { return .some(wait) }
      }
      return nil
    }

    mutating func take() {
      inFlight += 1
      bucket?.take()
    }
  }

  struct State {
    var global: Slot
    var apps: [String: Slot] = [:]
    /// Requests waiting, by app, over every worker; and when each app was last let in (a
    /// serial): when the global limits are the bottleneck, the app served longest ago goes first.
    var waiting: [String: Int] = [:]
    var served: [String: UInt64] = [:]
    var serial: UInt64 = 0

    /// Another app is waiting, was let in before `key` was, and its own limits have room now:
    /// it is that app's turn at the global limits.
    mutating func otherAppsTurn(than key: String, now: Double) -> Bool {
      guard waiting.count > 1 || (waiting.count == 1 && waiting[key] == nil) else { return false }
      let mine = served[key] ?? 0
      for (other, count) in waiting where count > 0 && other != key && (served[other] ?? 0) < mine {
        guard !other.isEmpty, apps[String(other.dropFirst(2))] != nil else { return true }
        if apps[String(other.dropFirst(2))]!.blocked(now: now) == nil { return true }
      }
      return false
    }
  }

  /// The key of an app's queue and turn ("" for requests without an app).
  static func key(_ app: String?) -> String { app.map { "a:" + $0 } ?? "" }

  private let state: Mutex<State>
  /// The upstream asked us to pause until then (monotonic seconds as a bit pattern; 0: no pause).
  private let pausedUntilBits = Atomic<UInt64>(0)
  public let global: UpstreamLimits
  /// The longest pause an upstream 429's Retry-After can cause.
  public static let maxPause = 60.0

  public init(global: UpstreamLimits) {
    self.global = global
    state = Mutex(State(global: Slot(global)))
  }

  /// Must a request without app limits go through admission?
  public var mustAdmit: Bool { !global.isEmpty || pausedUntilBitsNonZero }
  var pausedUntilBitsNonZero: Bool { pausedUntilBits.load(ordering: .relaxed) != 0 }

  /// Takes a slot for the request if the upstream is not paused and both its app's limits and
  /// the global ones have room; else says who held it back and for how long.
  func tryAcquire(app: String?, limits: UpstreamLimits?, now: Double) -> AdmissionVerdict {
    if let pause = pauseRemaining(now: now) { return .blocked(.global, wait: pause) }
    return state.withLock { state in
      if let app, let limits {
        if state.apps[app]?.limits != limits {
          // New, or its limits changed with a reload: the requests under way still count.
          var slot = Slot(limits)
          slot.inFlight = state.apps[app]?.inFlight ?? 0
          state.apps[app] = slot
        }
        if let wait = state.apps[app]!.blocked(now: now) { return .blocked(.app, wait: wait) }
      }
      if let wait = state.global.blocked(now: now) { return .blocked(.global, wait: wait) }
      let key = AdmissionLedger.key(app)
      if !global.isEmpty && state.otherAppsTurn(than: key, now: now) {
        // Fair across workers: this app steps aside for one that waits on another worker.
        return .blocked(.app, wait: AdmissionLedger.turnWait)
      }
      if let app, limits != nil { state.apps[app]!.take() }
      state.global.take()
      state.serial += 1
      state.served[key] = state.serial
      return .admitted
    }
  }

  /// How long an app that stepped aside for another's turn waits before it asks again.
  static let turnWait = 0.005

  /// A request for `app` started (`by` 1) or stopped (-1) waiting in a worker's queue.
  func adjustWaiting(app: String?, by change: Int) {
    state.withLock { state in
      let key = AdmissionLedger.key(app)
      let count = (state.waiting[key] ?? 0) + change
      state.waiting[key] = count > 0 ? count : nil
    }
  }

  /// The request admitted for `app` (with its limits then) has finished.
  func release(app: String?, counted: Bool) {
    state.withLock { state in
      if counted, let app, state.apps[app] != nil { state.apps[app]!.inFlight = max(0, state.apps[app]!.inFlight - 1) }
      state.global.inFlight = max(0, state.global.inFlight - 1)
    }
  }

  /// Seconds until a request for `app` could expect room, ignoring the queue (at least 0).
  func expectedWait(app: String?, now: Double) -> Double {
    var wait = pauseRemaining(now: now) ?? 0
    state.withLock { state in
      if let bucket = state.global.bucket { wait = max(wait, bucket.secondsUntilToken) }
      if let app, let bucket = state.apps[app]?.bucket { wait = max(wait, bucket.secondsUntilToken) }
    }
    return wait
  }

  /// Pauses new upstream sends for `seconds` (capped at `maxPause`), unless a longer pause is
  /// already on. Returns the seconds applied.
  @discardableResult
  func pause(seconds: Double, now: Double) -> Double {
    let applied = min(max(seconds, 0), AdmissionLedger.maxPause)
    let until = now + applied
    var current = pausedUntilBits.load(ordering: .relaxed)
    while current == 0 || Double(bitPattern: current) < until {
      let (exchanged, original) = pausedUntilBits.compareExchange(
        expected: current, desired: until.bitPattern, ordering: .relaxed)
      if exchanged { break }
      current = original
    }
    return applied
  }

  /// Seconds the pause still runs, or nil (clearing an expired one).
  func pauseRemaining(now: Double) -> Double? {
    let bits = pausedUntilBits.load(ordering: .relaxed)
    guard bits != 0 else { return nil }
    let until = Double(bitPattern: bits)
    if now < until { return until - now }
    _ = pausedUntilBits.compareExchange(expected: bits, desired: 0, ordering: .relaxed)
    return nil
  }

  /// After the apps file is reloaded: forget the state of apps no longer named.
  public func keepApps(_ names: Set<String>) {
    state.withLock { state in
      state.apps = state.apps.filter { names.contains($0.key) }
      state.served = state.served.filter { $0.key.isEmpty || names.contains(String($0.key.dropFirst(2))) }
    }
  }

  /// For tests and metrics: requests under way for the key (nil: global).
  func inFlight(app: String?) -> Int {
    state.withLock { state in app.map { state.apps[$0]?.inFlight ?? 0 } ?? state.global.inFlight }
  }
}

extension AdmissionLedger {
  /// The upstream asked for a pause that may still run (an expired one is cleared when seen).
  @inline(__always) public var isPaused: Bool { pausedUntilBitsNonZero }
}

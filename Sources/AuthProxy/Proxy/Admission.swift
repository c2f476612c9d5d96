/// One worker's admission stage: a request goes upstream only when its app's limits and the
/// global ones have room (`AdmissionLedger`, shared by the workers); otherwise it waits in a
/// bounded FIFO queue for its app, and the queues are served round-robin so that an app held
/// back by its own limit never holds back another, and when the global limit is the bottleneck
/// each app with waiting requests gets its turn. Time comes in as `now` (monotonic seconds).
/// No I/O: the worker arms the timers and answers the requests.
final class Admission<Item: AnyObject> {
  /// Most requests one worker keeps waiting per app (and for requests without an app); the
  /// next one is refused at once.
  static var queueBound: Int { 1024 }

  enum Decision: Equatable {
    case admitted
    case queued
    /// The queue is full: answer 429 now, with this Retry-After.
    case refused(retryAfter: Int)
  }

  private struct Entry {
    let item: Item
    let limits: UpstreamLimits?
  }

  /// A FIFO with a moving head (no O(n) removal from the front).
  private struct Queue {
    var entries: [Entry?] = []
    var head = 0
    var count = 0
    mutating func append(_ entry: Entry) {
      entries.append(entry)
      count += 1
    }
    var first: Entry? {
      mutating get {
        while head < entries.count, entries[head] == nil { head += 1 }
        return head < entries.count ? entries[head] : nil
      }
    }
    mutating func removeFirst() {
      _ = first
      entries[head] = nil
      head += 1
      count -= 1
      compact()
    }
    mutating func remove(_ item: Item) -> Bool {
      guard let index = entries[head...].firstIndex(where: { $0?.item === item }) else { return false }
      entries[index] = nil
      count -= 1
      compact()
      return true
    }
    private mutating func compact() {
      if count == 0 {
        entries.removeAll(keepingCapacity: true)
        head = 0
      } else if head > 64 && head * 2 > entries.count {
        entries.removeFirst(head)
        head = 0
      }
    }
  }

  let ledger: AdmissionLedger
  /// Queues by app ("" for requests without one), and the round-robin ring of their keys.
  private var queues: [String: Queue] = [:]
  private var ring: [String] = []
  private var next = 0
  private(set) var queued = 0
  /// Which app (nil: none) each admitted item was admitted for, until it is released.
  private var counted: [ObjectIdentifier: (app: String?, appCounted: Bool)] = [:]

  init(ledger: AdmissionLedger) { self.ledger = ledger }

  private static func key(_ app: String?) -> String { AdmissionLedger.key(app) }
  private static func app(_ key: String) -> String? { key.isEmpty ? nil : String(key.dropFirst(2)) }

  /// Admits `item` now, queues it behind those already waiting, or refuses it (queue full).
  /// A queued item is handed out later by `pump`, or taken back by `remove`.
  func admit(_ item: Item, app: String?, limits: UpstreamLimits?, now: Double) -> Decision {
    if queued == 0, ledger.tryAcquire(app: app, limits: limits, now: now) == .admitted {
      counted[ObjectIdentifier(item)] = (app, limits != nil)
      return .admitted
    }
    let key = Admission.key(app)
    let waiting = queues[key]?.count ?? 0
    if waiting >= Admission.queueBound { return .refused(retryAfter: retryAfter(app: app, now: now)) }
    if waiting == 0 { ring.append(key) }
    queues[key, default: Queue()].append(Entry(item: item, limits: limits))
    queued += 1
    ledger.adjustWaiting(app: app, by: 1)
    return .queued
  }

  /// Admits what now has room, round-robin over the apps' queues, FIFO within each. Returns
  /// the items to send, and when to look again (nil: when a request finishes).
  func pump(now: Double) -> (admitted: [Item], wakeIn: Double?) {
    var admitted: [Item] = []
    var wake: Double?
    var blockedKeys = 0
    while !ring.isEmpty && blockedKeys < ring.count {
      if next >= ring.count { next = 0 }
      let key = ring[next]
      guard let entry = queues[key]?.first else {
        ring.remove(at: next)
        continue
      }
      let app = Admission.app(key)
      switch ledger.tryAcquire(app: app, limits: entry.limits, now: now) {
      case .admitted:
        queues[key]!.removeFirst()
        queued -= 1
        ledger.adjustWaiting(app: app, by: -1)
        counted[ObjectIdentifier(entry.item)] = (app, entry.limits != nil)
        admitted.append(entry.item)
        blockedKeys = 0
        if queues[key]!.count == 0 {
          ring.remove(at: next)
        } else {
          next += 1
        }
      case .blocked(.app, let seconds):
        if let seconds { wake = min(wake ?? seconds, seconds) }
        blockedKeys += 1
        next += 1
      case .blocked(.global, let seconds):
        if let seconds { wake = min(wake ?? seconds, seconds) }
        return (admitted, wake)
      }
    }
    return (admitted, wake)
  }

  /// Takes a waiting item out of its queue (timed out, or its client left). False if it was
  /// not waiting.
  @discardableResult
  func remove(_ item: Item, app: String?) -> Bool {
    let key = Admission.key(app)
    guard queues[key]?.remove(item) == true else { return false }
    queued -= 1
    ledger.adjustWaiting(app: app, by: -1)
    return true
  }

  /// An admitted item is done: its slot frees. Call `pump` next.
  func release(_ item: Item) {
    guard let entry = counted.removeValue(forKey: ObjectIdentifier(item)) else { return }
    ledger.release(app: entry.app, counted: entry.appCounted)
  }

  /// Waiting for `app` now.
  func waiting(app: String?) -> Int { queues[Admission.key(app)]?.count ?? 0 }

  /// The Retry-After of a 429 for `app`: seconds until a token is expected for the requests
  /// already waiting and this one, at least 1.
  func retryAfter(app: String?, now: Double) -> Int {
    var seconds = ledger.expectedWait(app: app, now: now)
    if let rate = ledger.global.ratePerSecond { seconds += Double(queued) / rate }
    return max(1, Int(seconds.rounded(.up)))
  }
}

/// Caps retries at a share of recent requests, as Envoy's retry budget does, so a failing
/// upstream is not hit by a storm of retries. One per worker: no shared state.
final class RetryBudget {
  private let share: Double
  private let minimum: Int
  private let bucketSeconds: Double
  private var requests: [Int]
  private var retries: [Int]
  private var currentBucket: Int = 0

  /// `share` of the requests of the last `buckets × bucketSeconds` seconds may be retries,
  /// and always at least `minimum`.
  init(share: Double = 0.2, minimum: Int = 3, buckets: Int = 10, bucketSeconds: Double = 1) {
    self.share = share
    self.minimum = minimum
    self.bucketSeconds = bucketSeconds
    requests = Array(repeating: 0, count: buckets)
    retries = Array(repeating: 0, count: buckets)
  }

  func recordRequest(now: Double) {
    advance(to: now)
    requests[currentBucket % requests.count] += 1
  }

  /// Takes one retry from the budget if there is one left.
  func allowRetry(now: Double) -> Bool {
    advance(to: now)
    let total = requests.reduce(0, +)
    let used = retries.reduce(0, +)
    guard used < max(minimum, Int(Double(total) * share)) else { return false }
    retries[currentBucket % retries.count] += 1
    return true
  }

  private func advance(to now: Double) {
    let bucket = Int(now / bucketSeconds)
    guard bucket > currentBucket else { return }
    let steps = min(bucket - currentBucket, requests.count)
    for step in 1...steps {
      let index = (currentBucket + step) % requests.count
      requests[index] = 0
      retries[index] = 0
    }
    currentBucket = bucket
  }
}

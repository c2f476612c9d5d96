/// A token bucket over injected time: `rate` tokens a second, at most `capacity` saved up.
struct TokenBucket: Equatable {
  let rate: Double
  let capacity: Double
  private(set) var tokens: Double
  private var last: Double?

  init(rate: Double, capacity: Double) {
    self.rate = rate
    self.capacity = capacity
    tokens = capacity
  }

  mutating func refill(now: Double) {
    if let last, now > last { tokens = min(capacity, tokens + (now - last) * rate) }
    if last == nil || now > last! { last = now }
  }

  /// Seconds until a whole token is in the bucket (0: one is there now). Call `refill` first.
  var secondsUntilToken: Double { tokens >= 1 ? 0 : (1 - tokens) / rate }

  mutating func take() { tokens -= 1 }
}

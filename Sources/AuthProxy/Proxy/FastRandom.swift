/// xoshiro256** seeded from the kernel: request IDs must not collide, they are not secrets.
/// One per worker, never shared.
public struct FastRandom: RandomNumberGenerator {
  private var s: (UInt64, UInt64, UInt64, UInt64)

  public init() {
    var seed = SystemRandomNumberGenerator()
    s = (seed.next(), seed.next(), seed.next(), seed.next() | 1)
  }

  public mutating func next() -> UInt64 {
    let result = (s.1 &* 5).rotatedLeft(7) &* 9
    let t = s.1 << 17
    s.2 ^= s.0
    s.3 ^= s.1
    s.1 ^= s.2
    s.0 ^= s.3
    s.2 ^= t
    s.3 = s.3.rotatedLeft(45)
    return result
  }
}

extension UInt64 {
  fileprivate func rotatedLeft(_ k: UInt64) -> UInt64 { (self << k) | (self >> (64 - k)) }
}

import Testing

@testable import AuthProxy

@Suite struct QuietTrimTests {
  /// Feeds one look per (activity, in flight, held) and returns what each said.
  private func looks(_ ticks: [(Int, Int, Int)]) -> [Bool] {
    var trim = QuietTrim()
    return ticks.map { trim.due(activity: $0.0, inFlight: $0.1, held: $0.2) }
  }

  @Test func trimsOnceAfterTrafficStopsAndAgainOnlyAfterMoreTraffic() {
    let said = looks([
      (0, 0, 0),  // the first look has nothing to compare with
      (0, 0, 0),  // start-up's own garbage: one trim after a quiet tick
      (0, 0, 0),  // then none while nothing happens
      (500, 3, 40),  // traffic: never while requests are answered
      (900, 0, 40),
      (900, 0, 40),  // stopped: one trim
      (900, 0, 40),  // and none while nothing changes
      (900, 0, 25),  // the pool let idle connections go: their memory too
      (900, 0, 25),
      (901, 0, 25),  // one more request
      (901, 0, 25),
    ])
    #expect(said == [false, true, false, false, false, true, false, true, false, false, true])
  }

  @Test func neverTrimsWhileARequestIsInFlight() {
    // A long answer (a 1 GiB download) answers nothing new for many ticks: still busy.
    let said = looks([(10, 0, 1)] + Array(repeating: (10, 1, 1), count: 5) + [(10, 0, 1)])
    #expect(said == [false, false, false, false, false, false, true])
  }

  @Test func releasingFreeMemoryLeavesTheAllocatorUsable() {
    // malloc_trim on a live process: what was allocated before is intact, allocation goes on.
    let kept = [UInt8](repeating: 7, count: 1 << 20)
    var freed: [[UInt8]]? = (0..<64).map { _ in [UInt8](repeating: 1, count: 64 << 10) }
    #expect(freed?.count == 64)
    freed = nil
    QuietTrim.releaseFreeMemory()
    #expect(kept.allSatisfy { $0 == 7 })
    let again = [UInt8](repeating: 9, count: 1 << 20)
    #expect(again.count == 1 << 20 && again.last == 9)
  }
}

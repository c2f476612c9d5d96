import Testing

@testable import AuthProxy

/// 2026-11-29T10:00:00Z in seconds since the epoch.
private let tenOClock = 1_795_946_400.0

@Suite struct RFC3339Tests {

  // MARK: Parsing

  @Test func parsesUTCWithZ() {
    #expect(RFC3339.parse("2026-11-29T10:00:00Z") == tenOClock)
  }

  @Test func parsesTheEpoch() {
    #expect(RFC3339.parse("1970-01-01T00:00:00Z") == 0)
  }

  @Test func acceptsLowerCaseSeparators() {
    #expect(RFC3339.parse("2026-11-29t10:00:00z") == tenOClock)
  }

  @Test(arguments: [
    ("2026-11-29T10:00:00.5Z", 0.5), ("2026-11-29T10:00:00.250Z", 0.25), ("2026-11-29T10:00:00.125000Z", 0.125),
  ])
  func parsesFractionalSeconds(text: String, fraction: Double) throws {
    let parsed = try #require(RFC3339.parse(text))
    #expect(abs(parsed - (tenOClock + fraction)) < 1e-6)
  }

  @Test(arguments: ["2026-11-29T12:00:00+02:00", "2026-11-29T04:30:00-05:30", "2026-11-29T10:00:00+00:00"])
  func appliesTheOffset(text: String) {
    #expect(RFC3339.parse(text) == tenOClock)
  }

  @Test func offsetCanCrossMidnight() {
    #expect(RFC3339.parse("2026-11-30T01:00:00+15:00") == tenOClock)
  }

  @Test(arguments: [
    "", "garbage", "2026-11-29", "2026-11-29T10:00:00", "2026-11-29T10:00Z", "2026-11-29T10:00:00.Z",
    "2026-11-29T10:00:00+0200", "2026-11-29T10:00:00+02", "2026-11-29T10:00:00ZZ", "2026-13-01T00:00:00Z",
    "2026-00-01T00:00:00Z", "2026-11-00T00:00:00Z", "2026-11-32T00:00:00Z", "2026-11-29T24:00:00Z",
    "2026-11-29T10:60:00Z", "2026-11-29T10:00:61Z", "2026/11/29T10:00:00Z", "2026-11-29X10:00:00Z",
    "2026-1a-29T10:00:00Z", " 2026-11-29T10:00:00Z", "2026-11-29T10:00:00Z ",
  ])
  func refusesInvalidTimestamps(text: String) {
    #expect(RFC3339.parse(text) == nil)
  }

  @Test(arguments: [
    "2026-02-31T00:00:00Z", "2026-02-30T00:00:00Z", "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
    "2026-06-31T12:00:00Z", "2026-09-31T00:00:00Z", "2026-11-31T00:00:00Z", "2100-02-29T00:00:00Z",
  ])
  func refusesImpossibleDates(text: String) {
    // timegm would roll these over into the next month.
    #expect(RFC3339.parse(text) == nil)
  }

  @Test(arguments: [("2024-02-29T00:00:00Z", 1_709_164_800.0), ("2000-02-29T00:00:00Z", 951_782_400.0)])
  func acceptsLeapDays(text: String, seconds: Double) {
    #expect(RFC3339.parse(text) == seconds)
  }

  /// The leap second at the end of 2016, and one with an offset (the same instant): both read
  /// as the first second of 2017, as POSIX time counts.
  @Test(arguments: ["2016-12-31T23:59:60Z", "2017-01-01T08:59:60+09:00", "2016-12-31T23:59:60.000Z"])
  func acceptsLeapSeconds(text: String) {
    #expect(RFC3339.parse(text) == 1_483_228_800)
  }

  @Test(arguments: ["2026-01-31T00:00:00Z", "2026-04-30T00:00:00Z", "2026-12-31T23:59:59Z", "2026-02-28T00:00:00Z"])
  func acceptsTheLastDayOfAMonth(text: String) throws {
    let parsed = try #require(RFC3339.parse(text))
    #expect(RFC3339.format(parsed, milliseconds: false) == text)
  }

  @Test(arguments: [
    "2026-11-29T10:00:00+24:00", "2026-11-29T10:00:00-24:00", "2026-11-29T10:00:00+99:99", "2026-11-29T10:00:00+05:60",
    "2026-11-29T10:00:00-05:60",
  ])
  func refusesOutOfRangeOffsets(text: String) {
    #expect(RFC3339.parse(text) == nil)
  }

  @Test func acceptsTheLargestOffsets() {
    #expect(RFC3339.parse("2026-11-30T09:59:00+23:59") == tenOClock)
    #expect(RFC3339.parse("2026-11-28T10:01:00-23:59") == tenOClock)
  }

  // MARK: Formatting

  /// The access log formats every line with one cache per worker: whatever came before, a
  /// line reads as if formatted alone (second boundaries, millisecond carry, going back).
  @Test func aSharedSecondCacheFormatsLikeAFreshOne() {
    let times = [
      tenOClock + 0.25, tenOClock + 0.9994, tenOClock + 0.9996, tenOClock + 1.5, tenOClock + 59.9999, tenOClock - 0.0004,
      tenOClock - 86_400.5, tenOClock + 1.5, 0, -0.25,
    ]
    var cache = RFC3339.SecondCache()
    for time in times {
      var shared: [UInt8] = []
      RFC3339.append(time, to: &shared, cache: &cache)
      #expect(String(decoding: shared, as: UTF8.self) == RFC3339.format(time), "\(time)")
    }
    var shared: [UInt8] = []
    RFC3339.append(tenOClock + 0.5, to: &shared, cache: &cache)
    #expect(String(decoding: shared, as: UTF8.self) == "2026-11-29T10:00:00.500Z")
  }

  @Test func formatsWithMilliseconds() {
    #expect(RFC3339.format(tenOClock + 0.25) == "2026-11-29T10:00:00.250Z")
    #expect(RFC3339.format(tenOClock) == "2026-11-29T10:00:00.000Z")
  }

  @Test func formatsWithoutMilliseconds() {
    #expect(RFC3339.format(tenOClock + 0.75, milliseconds: false) == "2026-11-29T10:00:00Z")
  }

  @Test func formatsPaddedFields() {
    #expect(RFC3339.format(0) == "1970-01-01T00:00:00.000Z")
    #expect(RFC3339.format(1_000_000_000.5) == "2001-09-09T01:46:40.500Z")
  }

  @Test func formatsOneMillisecond() throws {
    // 0.001 is not exact in binary; truncating printed .000.
    let parsed = try #require(RFC3339.parse("2026-11-29T10:00:00.001Z"))
    #expect(RFC3339.format(parsed) == "2026-11-29T10:00:00.001Z")
  }

  @Test func roundTripsEveryMillisecond() throws {
    var mismatches: [String] = []
    for millis in 0..<1000 {
      let digits = String(millis)
      let text = "2026-11-29T10:00:00." + String(repeating: "0", count: 3 - digits.count) + digits + "Z"
      let parsed = try #require(RFC3339.parse(text))
      let formatted = RFC3339.format(parsed)
      if formatted != text { mismatches.append("\(text) → \(formatted)") }
    }
    let failures = mismatches.count
    #expect(failures == 0, "first mismatches: \(mismatches.prefix(5))")
  }

  @Test func roundsToTheNearestMillisecond() {
    #expect(RFC3339.format(tenOClock + 0.2504) == "2026-11-29T10:00:00.250Z")
    #expect(RFC3339.format(tenOClock + 0.2506) == "2026-11-29T10:00:00.251Z")
  }

  @Test func roundingCarriesIntoTheNextSecond() {
    #expect(RFC3339.format(tenOClock + 0.9996) == "2026-11-29T10:00:01.000Z")
    #expect(RFC3339.format(tenOClock + 59.9996) == "2026-11-29T10:01:00.000Z")
    #expect(RFC3339.format(86399.9996) == "1970-01-02T00:00:00.000Z")
    #expect(RFC3339.format(tenOClock + 0.9994) == "2026-11-29T10:00:00.999Z")
  }

  @Test(arguments: [0.0, 86399, tenOClock, tenOClock + 59, 4_102_444_800])
  func roundTripsWholeSeconds(seconds: Double) throws {
    let text = RFC3339.format(seconds, milliseconds: false)
    #expect(RFC3339.parse(text) == seconds)
  }
}

@Suite struct ClockTests {

  @Test func systemClockIsWallClockTime() {
    // After 2024-01-01 and before 2100-01-01: seconds since the epoch, not since boot.
    let now = SystemClock().now()
    #expect(now > 1_704_067_200 && now < 4_102_444_800)
  }

  @Test func monotonicSecondsNeverGoBackwards() {
    let first = monotonicSeconds()
    let second = monotonicSeconds()
    #expect(second >= first)
  }

  @Test func aManualMonotonicClockMovesOnlyWhenToldAndNeverBack() {
    let clock = ManualMonotonicClock(50)
    #expect(clock.seconds() == 50)
    #expect(clock.seconds() == 50, "reading it does not move it")
    clock.advance(by: 2.5)
    #expect(clock.seconds() == 52.5)
    clock.advance(by: -10)
    #expect(clock.seconds() == 52.5, "monotonic: a negative step is ignored")
  }

  @Test func theSystemMonotonicClockIsCLOCK_MONOTONIC() {
    let before = monotonicSeconds()
    let read = SystemMonotonicClock().seconds()
    #expect(read >= before && read <= monotonicSeconds())
  }
}

import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// What truly needs real time: the timers that ask for the timeout decisions, the control
/// thread's refresh and backoff schedules, and transfers that must outlast a timeout, each
/// checked inside a window of real seconds. They are slow and a loaded machine can disturb
/// them, so they do not run in `swift test`; CI runs them alone, one at a time:
///
///     AUTHPROXY_TIMING_TESTS=1 swift test --filter TimingTests --no-parallel
///
/// The same behaviours are checked deterministically, with a manual clock or a state machine,
/// in ClientTimeoutTests, SlowClientTests, TokenStateMachineTests and RetryBudgetTests.
let timingTestsEnabled = ProcessInfo.processInfo.environment["AUTHPROXY_TIMING_TESTS"] == "1"

@Suite(.serialized, .enabled(if: timingTestsEnabled, "set AUTHPROXY_TIMING_TESTS=1 (real-time windows)"))
struct SlowClientTimingTests {
  /// The 1 s sweep timer really runs: a trickled head gets its 408 within the header timeout
  /// and the check period, in real seconds.
  @Test func aClientTricklingItsHeadIsCutOffAfterTheHeaderTimeoutWith408InRealTime() throws {
    let proxy = try ProxyHarness(workers: 1, flags: ["header-timeout": "2s"])
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    let before = proxy.sandbox.counters.apiRequests
    // Far longer than 2 s at one byte per 200 ms: only the header timeout can end it early.
    let head = Array("GET /api/v1/echo HTTP/1.1\r\nHost: x\r\nX-Slow: \(String(repeating: "s", count: 200))\r\n\r\n".utf8)
    let client = try PacedConnection(port: proxy.port)
    let started = Date()
    var sent = 0
    // One byte, then wait up to 200 ms for an answer (the pace of the trickle, not an assertion).
    while sent < head.count, Date().timeIntervalSince(started) < 15 {
      guard client.send(head[sent..<(sent + 1)]) else { break }
      sent += 1
      if client.waitReadable(timeout: 0.2) { break }
    }
    let answered = Date().timeIntervalSince(started)
    #expect(sent < head.count, "the head was never complete")
    let response = try #require(try client.readUntilClosed(timeout: 10), "the connection is closed after the 408")
    #expect(response.status == 408)
    #expect(answered >= 2, "not before the header timeout: \(answered) s")
    #expect(answered < 5, "within the header timeout and the 1 s check period: \(answered) s")
    #expect(proxy.sandbox.counters.apiRequests == before)
  }

  @Test func anIdleConnectionIsClosedAfterTheTimeoutInRealTime() throws {
    let proxy = try ProxyHarness(workers: 1, flags: ["timeout": "2s"])
    defer { proxy.stop() }
    let connection = try RawConnection(port: proxy.port, timeoutSeconds: 15)
    let started = Date()
    #expect(try connection.isClosedByPeer())
    let took = Date().timeIntervalSince(started)
    #expect(took >= 1.5 && took < 5, "closed after \(took) s")
  }

  @Test func aSlowButSteadyReaderGetsAResponseThatOutlastsTheTimeout() throws {
    // --timeout is evhttp's idle timeout on client connections; a download that keeps moving
    // for longer than that must not be cut.
    let proxy = try ProxyHarness(workers: 1, flags: ["timeout": "2s"])
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    let size = 24 * 1024 * 1024
    let client = try PacedConnection(port: proxy.port, receiveBuffer: 128 * 1024)
    #expect(client.send(requestBytes(method: "GET", target: "/api/v1/bytes?size=\(size)")[...]))
    let started = Date()
    // About 6 MB/s: four seconds or more for the whole body.
    let response = try #require(try client.readResponse(timeout: 30, bytesPerTick: 384 * 1024, tick: 0.06))
    let took = Date().timeIntervalSince(started)
    #expect(response.status == 200)
    #expect(response.body.count == size, "got \(response.body.count) of \(size) bytes after \(took) s")
    let expected = SHA256Hasher()
    patternPieces(size: size) { expected.update($0) }
    let hasher = SHA256Hasher()
    hasher.update(response.body[...])
    #expect(hasher.finalize() == expected.finalize(), "every byte intact")
    #expect(took > 3, "the transfer outlasted the 2 s timeout (\(took) s)")
  }
}

@Suite(.serialized, .enabled(if: timingTestsEnabled, "set AUTHPROXY_TIMING_TESTS=1 (real-time windows)"))
struct TokenTimingTests {
  @Test func aLoginStormStaysWithinTheBackoffSchedule() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    sandbox.failLogins(.invalidCredentials)
    let proxy = try ProxyHarness(sandbox: sandbox)
    defer { proxy.stop() }
    // Requests keep arriving; none of them may trigger a login of its own.
    let load = LoadGenerator(port: proxy.port, threads: 2, pause: 10_000)
    let start = Date()
    while Date().timeIntervalSince(start) < 10 { usleep(100_000) }
    let statuses = load.stop()
    let attempts = proxy.sandbox.counters.failedLogins
    // 1 s doubling, jitter in the upper half: attempts at 0, ≥0.5, ≥1.5, ≥3.5, ≥7.5 s.
    #expect(attempts >= 3 && attempts <= 5, "\(attempts) login attempts in 10 s")
    #expect(statuses.count > 50)
    #expect(
      statuses.allSatisfy { $0 == 503 },
      "other answers: \(Dictionary(grouping: statuses.filter { $0 != 503 }, by: { $0 }).mapValues(\.count))")
  }

  @Test func refreshesOncePerExpiryAndNoReplicaRevokesAnother() throws {
    let redis = try RedisServer()
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    sandbox.setLifetimes(access: 3, refresh: 3600)
    let proxies = try RedisTokenStoreTests().replicas(3, sandbox: sandbox, redis: redis)
    defer { proxies.forEach { $0.stop() } }
    #expect(try proxies[0].get("/api/v1/echo").status == 200)
    let loads = proxies.map { LoadGenerator(port: $0.port, threads: 1) }
    let start = Date()
    while Date().timeIntervalSince(start) < 8 { usleep(100_000) }
    let statuses = loads.flatMap { $0.stop() }
    #expect(statuses.count > 30)
    #expect(statuses.allSatisfy { $0 == 200 }, "\(statuses.filter { $0 != 200 })")
    let counters = sandbox.counters
    #expect(counters.logins == 1, "one login for the three replicas")
    #expect(counters.failedRefreshes == 0, "no replica spent a refresh token another one had rotated")
    #expect(counters.unauthorizedAPIRequests == 0)
    // A 3 s token is refreshed after half its life: about 8 / 1.5 ≈ 5 refreshes in all, not 3 × 5.
    #expect(counters.refreshes >= 3 && counters.refreshes <= 7, "\(counters.refreshes) refreshes")
  }
}

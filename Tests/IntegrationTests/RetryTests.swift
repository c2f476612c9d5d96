import AuthProxy
import Foundation
import SandboxAPI
import Synchronization
import Testing
import TestSupport

/// A request through the proxy with a fresh, known X-Request-ID; returns the response, its
/// access-log line and the seconds it took.
private func send(
  _ proxy: ProxyHarness, _ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8] = []
) throws -> (response: HTTPResponse, log: [String: Any], seconds: Double) {
  let requestID = "retry-\(UUID().uuidString)"
  let start = Date()
  let response = try request(
    port: proxy.port, method: method, target: target, headers: headers + [("X-Request-ID", requestID)], body: body)
  let seconds = Date().timeIntervalSince(start)
  let log = try #require(accessLine(proxy, requestID), "no access-log line for \(method) \(target)")
  return (response, log, seconds)
}

/// A unique key for the sandbox's per-key hit counters.
private func freshKey(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(8))" }

/// SPEC §4 retries, end to end against the sandbox's fault endpoints: which requests are
/// retried, how often, how long apart, and what the access log says about it.
@Suite(.serialized) struct RetryTests {
  /// One worker: every request shares one upstream connection pool, so a request that must
  /// not be repeated meets the pooled connections its predecessors left.
  static let flags = ["retries": "3", "retry-delay": "50ms", "workers": "1"]

  @Test func aGetIsRetriedUntilItSucceedsAndTheAccessLogCountsEveryAttempt() throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.flags)
    defer { proxy.stop() }
    let key = freshKey("get")
    let (response, log, _) = try send(proxy, "GET", "/api/v1/flaky?key=\(key)&fail=2")
    #expect(response.status == 200)
    #expect(response.json?["hit"] as? Int == 3)
    #expect(proxy.sandbox.hits(key) == 3)
    #expect(log["attempts"] as? Int == 3)
    #expect(log["status"] as? Int == 200)
    #expect(log["upstream_status"] as? Int == 200)
    #expect(log["error"] is NSNull)
  }

  @Test(arguments: ["HEAD", "OPTIONS", "PUT", "DELETE"])
  func everyIdempotentMethodIsRetried(method: String) throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.flags)
    defer { proxy.stop() }
    let key = freshKey(method.lowercased())
    let (response, log, _) = try send(proxy, method, "/api/v1/flaky?key=\(key)&fail=1", body: method == "PUT" ? Array("{}".utf8) : [])
    #expect(response.status == 200, "\(log)")
    #expect(proxy.sandbox.hits(key) == 2)
    #expect(log["attempts"] as? Int == 2)
  }

  @Test(arguments: [429, 502, 503, 504])
  func eachRetryableStatusIsRetried(status: Int) throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.flags)
    defer { proxy.stop() }
    let key = freshKey("status-\(status)")
    let (response, log, _) = try send(proxy, "GET", "/api/v1/flaky?key=\(key)&fail=1&status=\(status)")
    #expect(response.status == 200)
    #expect(proxy.sandbox.hits(key) == 2)
    #expect(log["attempts"] as? Int == 2)
  }

  @Test func otherErrorStatusesAreNotRetried() throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.flags)
    defer { proxy.stop() }
    for status in [500, 501, 400, 404, 409] {
      let key = freshKey("no-retry-\(status)")
      let (response, log, _) = try send(proxy, "GET", "/api/v1/flaky?key=\(key)&fail=1&status=\(status)")
      #expect(response.status == status)
      #expect(proxy.sandbox.hits(key) == 1, "\(status)")
      #expect(log["attempts"] as? Int == 1, "\(status)")
    }
  }

  @Test func whenRetriesAreExhaustedTheLast503IsPassedThrough() throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.flags.merging(["retries": "2"]) { $1 })
    defer { proxy.stop() }
    let key = freshKey("exhausted")
    let (response, log, _) = try send(proxy, "GET", "/api/v1/flaky?key=\(key)&fail=100")
    #expect(response.status == 503)
    // The API's own answer, not one the proxy made up.
    #expect(response.json?["status"] as? Int == 503)
    #expect(response.errorCode == nil)
    #expect(proxy.sandbox.hits(key) == 3)
    #expect(log["attempts"] as? Int == 3)
    #expect(log["upstream_status"] as? Int == 503)
    #expect(log["error"] is NSNull)
  }

  @Test func retriesZeroMeansOneAttempt() throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.flags.merging(["retries": "0"]) { $1 })
    defer { proxy.stop() }
    let key = freshKey("zero")
    let (response, log, _) = try send(proxy, "GET", "/api/v1/flaky?key=\(key)&fail=1")
    #expect(response.status == 503)
    #expect(proxy.sandbox.hits(key) == 1)
    #expect(log["attempts"] as? Int == 1)
  }

  @Test(arguments: ["POST", "PATCH"])
  func aPostOrPatchWithoutAnIdempotencyKeyIsSentOnce(method: String) throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.flags)
    defer { proxy.stop() }
    let key = freshKey(method.lowercased())
    let (response, log, _) = try send(proxy, method, "/api/v1/flaky?key=\(key)&fail=1", body: Array("{\"n\":1}".utf8))
    #expect(response.status == 503)
    #expect(response.json?["status"] as? Int == 503)
    #expect(proxy.sandbox.hits(key) == 1)
    #expect(log["attempts"] as? Int == 1)
    // An empty key is no key.
    let empty = freshKey("empty-key")
    let second = try send(
      proxy, method, "/api/v1/flaky?key=\(empty)&fail=1", headers: [("Idempotency-Key", "")], body: Array("{}".utf8))
    #expect(second.response.status == 503)
    #expect(proxy.sandbox.hits(empty) == 1)
  }

  @Test(arguments: ["POST", "PATCH"])
  func aPostOrPatchWithAnIdempotencyKeyIsRetried(method: String) throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.flags)
    defer { proxy.stop() }
    let key = freshKey("idem-\(method.lowercased())")
    let (response, log, _) = try send(
      proxy, method, "/api/v1/flaky?key=\(key)&fail=2", headers: [("Idempotency-Key", "order-\(key)")], body: Array("{}".utf8))
    #expect(response.status == 200)
    #expect(proxy.sandbox.hits(key) == 3)
    #expect(log["attempts"] as? Int == 3)
  }

  /// The hard case: the API read the whole request, maybe acted on it, then the connection
  /// broke. Neither the proxy nor curl (which silently resends a request whose pooled
  /// connection dies before an answer) may send it again.
  @Test(arguments: ["POST", "PATCH"])
  func aPostOrPatchThatTheUpstreamResetsAfterReadingItReachesItExactlyOnce(method: String) throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.flags)
    defer { proxy.stop() }
    // Leave pooled upstream connections behind, as real traffic does.
    for _ in 0..<3 { #expect(try proxy.get("/api/v1/echo").status == 200) }
    let key = freshKey("reset-\(method.lowercased())")
    let (response, log, _) = try send(proxy, method, "/api/v1/reset?key=\(key)", body: Array("{\"debit\":100}".utf8))
    #expect(response.status == 502)
    #expect(response.header("Content-Type") == "application/json")
    // It went out on the connection the GETs left (--reuse-window), and the answer says the
    // request may have reached the API.
    #expect(response.errorCode == "upstream_broken_after_send", "\(response.errorCode ?? "nil")")
    #expect(proxy.sandbox.hits(key) == 1)
    #expect(log["attempts"] as? Int == 1)
    #expect(log["status"] as? Int == 502)
    #expect(log["error"] as? String == response.errorCode)
    // And the next request is served normally.
    #expect(try proxy.get("/api/v1/echo").status == 200)
    #expect(proxy.sandbox.hits(key) == 1)
  }

  @Test func aPostWithAnIdempotencyKeyThatTheUpstreamResetsIsRetried() throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.flags)
    defer { proxy.stop() }
    let key = freshKey("reset-idem")
    let (response, log, _) = try send(
      proxy, "POST", "/api/v1/reset?key=\(key)", headers: [("Idempotency-Key", key)], body: Array("{}".utf8))
    #expect(response.status == 502)
    #expect(proxy.sandbox.hits(key) == 4)
    #expect(log["attempts"] as? Int == 4)
  }

  /// A GET the upstream resets is tried 1 + --retries times, and the access log says exactly
  /// as many: also when pooled connections are around (curl's own silent resend on a dead
  /// pooled connection would be an attempt nobody counted).
  @Test(arguments: [false, true])
  func aGetThatTheUpstreamResetsIsTriedOnePlusRetriesTimes(pooled: Bool) throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.flags)
    defer { proxy.stop() }
    if pooled {
      for _ in 0..<3 { #expect(try proxy.get("/api/v1/echo").status == 200) }
    }
    let key = freshKey("reset-get")
    let (response, log, _) = try send(proxy, "GET", "/api/v1/reset?key=\(key)")
    #expect(response.status == 502)
    #expect(response.errorCode == "upstream_empty" || response.errorCode == "upstream_broken", "\(response.errorCode ?? "nil")")
    let hits = proxy.sandbox.hits(key)
    // On a pooled connection that died before any answer byte libcurl resends once by itself
    // ("Connection died, retrying a fresh connect"); CurlTransfer counts that send too, so the
    // access log's attempts always equal the sends the upstream saw.
    #expect(log["attempts"] as? Int == hits, "attempts \(log["attempts"] ?? "nil") for \(hits) upstream hits")
    #expect(pooled ? (4...5).contains(hits) : hits == 4, "\(hits) upstream hits")
    #expect(log["error"] as? String == response.errorCode)
    #expect(try proxy.get("/api/v1/echo").status == 200)
  }

  @Test func retryAfterInSecondsIsHonoured() throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.flags.merging(["timeout": "5s"]) { $1 })
    defer { proxy.stop() }
    let key = freshKey("retry-after")
    let (response, log, seconds) = try send(proxy, "GET", "/api/v1/flaky?key=\(key)&fail=1&retry_after=1")
    #expect(response.status == 200)
    // Not before (a timer never fires early); no upper bound: a loaded machine may be slow.
    #expect(seconds >= 1.0, "retried after \(seconds)s, Retry-After asked for 1s")
    #expect(proxy.sandbox.hits(key) == 2)
    #expect(log["attempts"] as? Int == 2)
  }

  @Test func retryAfterAsAnHTTPDateIsHonoured() throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.flags.merging(["timeout": "5s"]) { $1 })
    defer { proxy.stop() }
    let key = freshKey("retry-after-date")
    // An HTTP date has whole seconds: "2 s from now", rounded up, is 2 to 3 s ahead of the answer.
    let (response, log, seconds) = try send(proxy, "GET", "/api/v1/flaky?key=\(key)&fail=1&retry_after_date=2")
    #expect(response.status == 200)
    #expect(seconds >= 1.0, "retried after \(seconds)s, Retry-After asked for a date 2s ahead")
    #expect(proxy.sandbox.hits(key) == 2)
    #expect(log["attempts"] as? Int == 2)
  }

  @Test(arguments: ["retry_after=30", "retry_after_date=30"])
  func aRetryAfterLongerThanTheTimeoutIsNotWaitedFor(form: String) throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.flags.merging(["timeout": "2s"]) { $1 })
    defer { proxy.stop() }
    let key = freshKey("retry-after-long")
    let (response, log, _) = try send(proxy, "GET", "/api/v1/flaky?key=\(key)&fail=1&\(form)")
    #expect(response.status == 503)
    #expect(response.header("Retry-After") != nil, "the app sees the API's Retry-After")
    // Not waited for: one attempt only (the hits and the log say so, whatever the machine's speed).
    #expect(proxy.sandbox.hits(key) == 1)
    #expect(log["attempts"] as? Int == 1)
  }

  /// With an upstream that fails everything, retries may add at most 20 % (at least 3 per
  /// worker's budget) to the load: not a retry storm of 1 + --retries times the traffic.
  @Test func theRetryBudgetStopsARetryStorm() throws {
    let workers = 2
    // The budget's window is 10 s of the worker's clock: standing still, the whole storm falls in
    // one window however long a loaded machine takes to send it.
    let proxy = try ProxyHarness(
      workers: workers, flags: ["retries": "3", "retry-delay": "1ms", "workers": String(workers), "timeout": "5s"],
      monotonic: ManualMonotonicClock())
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    let key = freshKey("storm")
    let perThread = 30
    let threads = 4
    let port = proxy.port
    let statuses = Mutex<[Int]>([])
    let done = Atomic<Int>(0)
    for _ in 0..<threads {
      Thread {
        for _ in 0..<perThread {
          let status = (try? request(port: port, target: "/api/v1/flaky?key=\(key)&fail=1000000").status) ?? -1
          statuses.withLock { $0.append(status) }
        }
        done.add(1, ordering: .relaxed)
      }.start()
    }
    #expect(eventually(timeout: 60) { done.load(ordering: .relaxed) == threads })
    let requests = perThread * threads
    let seen = statuses.withLock { $0 }
    #expect(seen.count == requests)
    #expect(seen.allSatisfy { $0 == 503 }, "\(Set(seen))")
    let hits = proxy.sandbox.hits(key)
    let bound = Double(requests) * 1.2 + Double(3 * workers)
    #expect(Double(hits) <= bound, "\(hits) upstream hits for \(requests) requests (bound \(bound))")
    #expect(hits > requests, "some retries are allowed")
    // Every upstream hit is an attempt the access log counted.
    let lines = proxy.accessLog(count: requests + 1).filter { ($0["path"] as? String) == "/api/v1/flaky" }
    #expect(lines.count == requests)
    #expect(lines.reduce(0) { $0 + ($1["attempts"] as? Int ?? 0) } == hits)
  }
}

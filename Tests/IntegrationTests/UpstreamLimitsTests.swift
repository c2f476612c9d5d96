import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// Issue 21 point 3 over real sockets: --max-upstream-concurrency, --rate-limit with its
/// queue and our 429, and the pause an upstream 429 with Retry-After causes.
@Suite(.serialized) struct UpstreamLimitsTests {
  /// Sends a request without reading its answer yet (the connection holds it).
  func start(_ proxy: ProxyHarness, _ target: String, id: String, headers: [(String, String)] = []) throws -> RawConnection {
    let connection = try RawConnection(port: proxy.port)
    try connection.send(requestBytes(method: "GET", target: target, headers: headers + [("X-Request-ID", id)]))
    return connection
  }

  @Test func theConcurrencyCapHoldsTheRestInTheQueueOverBothWorkers() throws {
    let proxy = try ProxyHarness(workers: 2, flags: ["max-upstream-concurrency": "2"])
    defer { proxy.stop() }
    // Four requests the sandbox holds until told: two go upstream, two wait in our queue.
    let held = try (0..<4).map { try start(proxy, "/api/v1/slow?ms=60000", id: "cap-\($0)") }
    #expect(eventually { proxy.metric("authproxy_admission_queued") == 2 })
    #expect(proxy.metric("authproxy_in_flight_requests") == 4)
    // Let the two upstream go (waking until they reached the sandbox and answered): the two
    // waiting take their places.
    #expect(
      eventually {
        proxy.sandbox.wakeSleepers()
        return proxy.accessLog().count >= 2
      })
    #expect(eventually { proxy.metric("authproxy_admission_queued") == 0 })
    #expect(
      eventually {
        proxy.sandbox.wakeSleepers()
        return proxy.accessLog().count >= 4
      })
    for connection in held { #expect(try connection.readResponse().status == 200) }
    let lines = proxy.accessLog(count: 4)
    #expect(lines.allSatisfy { $0["status"] as? Int == 200 })
    #expect(proxy.metric("authproxy_rate_limited_total") == 0)
  }

  @Test func overTheRateARequestWaitsForItsTokenThenGoes() throws {
    // 4/s with a burst of 1: the second request of a pair waits about 250 ms for its token.
    let proxy = try ProxyHarness(workers: 1, flags: ["rate-limit": "4/s", "rate-burst": "1"])
    defer { proxy.stop() }
    let first = try start(proxy, "/api/v1/echo", id: "rate-1")
    let second = try start(proxy, "/api/v1/echo", id: "rate-2")
    #expect(try first.readResponse().status == 200)
    #expect(try second.readResponse().status == 200)
    let one = try #require(accessLine(proxy, "rate-1"))
    let two = try #require(accessLine(proxy, "rate-2"))
    let waited = max(one["duration_ms"] as? Double ?? 0, two["duration_ms"] as? Double ?? 0)
    #expect(waited >= 150, "one of the two waited for the next token (\(waited) ms)")
  }

  @Test func waitingLongerThanTimeoutGets429WithRetryAfterAndALogLine() throws {
    // One request a minute: the second waits --timeout (1 s) in the queue, then gets our 429.
    let proxy = try ProxyHarness(workers: 1, flags: ["rate-limit": "1/m", "timeout": "1s"])
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo", headers: [("X-Request-ID", "first")]).status == 200)
    let response = try proxy.get("/api/v1/echo", headers: [("X-Request-ID", "limited")])
    #expect(response.status == 429)
    let retryAfter = try #require(Int(response.header("Retry-After") ?? ""))
    #expect(retryAfter >= 1 && retryAfter <= 60)
    let body = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    let error = try #require(body["error"] as? [String: Any])
    #expect(error["code"] as? String == "rate_limited")
    #expect(error["request_id"] as? String == "limited")
    #expect((error["message"] as? String ?? "").contains("--timeout"))
    let line = try #require(accessLine(proxy, "limited"))
    #expect(line["status"] as? Int == 429)
    #expect(line["error"] as? String == "rate_limited")
    #expect(line["upstream_status"] is NSNull)
    #expect((line["trace_id"] as? String)?.count == 32)
    #expect((line["duration_ms"] as? Double ?? 0) >= 900)
    #expect(proxy.metric("authproxy_rate_limited_total") == 1)
  }

  @Test func anUpstream429WithRetryAfterPausesNewRequestsOnEveryWorker() throws {
    let proxy = try ProxyHarness(workers: 2, flags: ["retries": "0"])
    defer { proxy.stop() }
    let key = "pause-\(UUID().uuidString.prefix(8))"
    let throttled = try proxy.get("/api/v1/flaky?key=\(key)&fail=1&status=429&retry_after=1")
    #expect(throttled.status == 429)
    #expect(throttled.header("Retry-After") == "1", "the API's own 429 passes through as it is")
    // The next request waits for the pause to end, then goes.
    let start = Date()
    #expect(try proxy.get("/api/v1/echo", headers: [("X-Request-ID", "after-pause")]).status == 200)
    #expect(Date().timeIntervalSince(start) >= 0.5, "it waited for the pause")
    #expect(proxy.metric("authproxy_upstream_paused_total") == 1)
    #expect(proxy.logs.all.contains { $0.contains("new upstream requests pause for 1.0s") })
    let line = try #require(accessLine(proxy, "after-pause"))
    #expect(line["status"] as? Int == 200)
  }

  @Test func duringALongPauseARequestGetsOur429AfterTimeout() throws {
    let proxy = try ProxyHarness(workers: 1, flags: ["retries": "0", "timeout": "1s"])
    defer { proxy.stop() }
    let key = "long-\(UUID().uuidString.prefix(8))"
    #expect(try proxy.get("/api/v1/flaky?key=\(key)&fail=1&status=429&retry_after=30").status == 429)
    let response = try proxy.get("/api/v1/echo", headers: [("X-Request-ID", "paused")])
    #expect(response.status == 429)
    let retryAfter = try #require(Int(response.header("Retry-After") ?? ""))
    #expect(retryAfter >= 20 && retryAfter <= 30, "the pause's remaining seconds (\(retryAfter))")
    let line = try #require(accessLine(proxy, "paused"))
    #expect(line["error"] as? String == "rate_limited")
    #expect(line["upstream_status"] is NSNull)
  }

  @Test func badLimitFlagsAreNamed() {
    for (flag, value) in [("rate-limit", "fast"), ("max-upstream-concurrency", "0"), ("rate-burst", "-1")] {
      guard case .failure(let errors) = ServeConfig.load(flags: ["upstream": "https://api.example", flag: value], environment: [:])
      else {
        Issue.record("--\(flag) \(value) was accepted")
        continue
      }
      #expect(errors.problems.contains { $0.contains("--\(flag)") && $0.contains(value) })
    }
    guard case .failure(let alone) = ServeConfig.load(flags: ["upstream": "https://api.example", "rate-burst": "5"], environment: [:])
    else {
      Issue.record("--rate-burst without --rate-limit was accepted")
      return
    }
    #expect(alone.problems.contains { $0.contains("--rate-burst") && $0.contains("needs --rate-limit") })
    let good = try? ServeConfig.load(
      flags: ["upstream": "https://api.example"], environment: ["AUTHPROXY_RATE_LIMIT": "600/m", "AUTHPROXY_RATE_BURST": "3"]
    ).get()
    #expect(good?.limits == UpstreamLimits(ratePerSecond: 10, burst: 3))
  }
}

/// Issue 21 point 4 over real sockets: W3C trace context through the proxy and on its logins.
@Suite(.serialized) struct TraceContextEndToEndTests {
  let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

  @Test func aValidTraceparentKeepsItsTraceWithOurSpanAndItsTracestate() throws {
    let proxy = try ProxyHarness(workers: 1)
    defer { proxy.stop() }
    let response = try proxy.get(
      "/api/v1/echo", headers: [("traceparent", incoming), ("tracestate", "vendor=abc"), ("X-Request-ID", "traced")])
    #expect(response.status == 200)
    let sent = try #require(proxy.sandbox.lastAPIRequest)
    #expect(sent.headerValues("traceparent").count == 1)
    let parent = try #require(sent.header("traceparent")).split(separator: "-")
    #expect(parent.count == 4 && parent[0] == "00" && parent[1] == "4bf92f3577b34da6a3ce929d0e0e4736" && parent[3] == "01")
    #expect(parent[2] != "00f067aa0ba902b7" && parent[2].count == 16, "the proxy's own span id")
    #expect(sent.header("tracestate") == "vendor=abc")
    #expect(try #require(accessLine(proxy, "traced"))["trace_id"] as? String == "4bf92f3577b34da6a3ce929d0e0e4736")
  }

  @Test func withoutOrWithAnInvalidTraceparentTheProxyStartsATrace() throws {
    let proxy = try ProxyHarness(workers: 1)
    defer { proxy.stop() }
    var traceIDs: [String] = []
    for (id, headers) in [("none", []), ("invalid", [("traceparent", "00-zz-00f067aa0ba902b7-01"), ("tracestate", "v=1")])] {
      #expect(try proxy.get("/api/v1/echo", headers: headers + [("X-Request-ID", id)]).status == 200)
      let sent = try #require(proxy.sandbox.lastAPIRequest)
      let parent = try #require(sent.header("traceparent"))
      #expect(TraceContext.parse(Array(parent.utf8)) != nil, "a valid traceparent went upstream: \(parent)")
      #expect(sent.header("tracestate") == nil, "no tracestate without a valid traceparent")
      let logged = try #require(accessLine(proxy, id)?["trace_id"] as? String)
      #expect(parent.split(separator: "-")[1] == logged)
      traceIDs.append(logged)
    }
    #expect(Set(traceIDs).count == 2)
  }

  @Test func theLoginCarriesItsOwnTraceparentNamedInItsLogLine() throws {
    let proxy = try ProxyHarness(workers: 1)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo", headers: [("traceparent", incoming)]).status == 200)
    let login = try #require(proxy.sandbox.authTraceparents.first { $0.path == "/auth/login" })
    let parsed = try #require(TraceContext.parse(Array(login.traceparent.utf8)), "login traceparent: '\(login.traceparent)'")
    #expect(parsed.traceID != "4bf92f3577b34da6a3ce929d0e0e4736")
    #expect(eventually { proxy.logs.all.contains { $0.contains("login succeeded") && $0.contains(parsed.traceID) } })
  }
}

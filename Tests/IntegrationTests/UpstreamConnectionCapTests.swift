import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// Issue 22 point 3 over real sockets: --max-upstream-connections caps a worker's upstream
/// connections; the requests beyond it wait in order for one, up to --timeout.
@Suite(.serialized) struct UpstreamConnectionCapTests {
  /// Sends a request without reading its answer yet (the connection holds it).
  func start(_ proxy: ProxyHarness, _ target: String, id: String) throws -> RawConnection {
    let connection = try RawConnection(port: proxy.port)
    try connection.send(requestBytes(method: "GET", target: target, headers: [("X-Request-ID", id)]))
    return connection
  }

  @Test func twoConnectionsServeSixHeldRequestsInTurn() throws {
    let proxy = try ProxyHarness(workers: 1, flags: ["max-upstream-connections": "2"])
    defer { proxy.stop() }
    let before = proxy.sandbox.counters.apiRequests
    // Six requests the sandbox holds until told: two reach it, four wait for a connection.
    let held = try (0..<6).map { try start(proxy, "/api/v1/slow?ms=600000", id: "cap-\($0)") }
    #expect(eventually { proxy.metric("authproxy_upstream_queued_requests") == 4 })
    #expect(eventually { proxy.sandbox.counters.apiRequests - before == 2 })
    #expect(proxy.metric("authproxy_in_flight_requests") == 6)
    // Nothing else reaches the sandbox while the two are held.
    Thread.sleep(forTimeInterval: 0.3)
    #expect(proxy.sandbox.counters.apiRequests - before == 2, "the cap holds")
    #expect(proxy.metric("authproxy_upstream_queued_requests") == 4)
    // Each wake answers those held now; their connections go straight to the next waiters.
    #expect(
      eventually {
        proxy.sandbox.wakeSleepers()
        return proxy.accessLog().count >= 6
      })
    for connection in held { #expect(try connection.readResponse().status == 200) }
    let lines = proxy.accessLog(count: 6)
    #expect(lines.allSatisfy { $0["status"] as? Int == 200 })
    #expect(proxy.sandbox.counters.apiRequests - before == 6)
    #expect(proxy.metric("authproxy_upstream_queued_requests") == 0)
    #expect(
      proxy.metric("authproxy_upstream_connections_total") == 2,
      "the four that waited took the connections the first two left: no new handshakes")
  }

  /// The wait for a connection counts against --timeout: a waiter gets its 504 at --timeout
  /// after it came, not later. (Here the held request times out first, at its own --timeout, so
  /// the waiter gets the connection with the rest of its time: the answer is the head timeout.
  /// A waiter that never gets a connection fails as `queueTimedOut`: UpstreamPoolTests.)
  @Test func aRequestThatWaitsForAConnectionGets504WithinTimeout() throws {
    let proxy = try ProxyHarness(
      workers: 1, flags: ["max-upstream-connections": "1", "timeout": "2s", "retries": "0"])
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo", headers: [("X-Request-ID", "warm")]).status == 200)
    let before = proxy.sandbox.counters.apiRequests
    let holder = try start(proxy, "/api/v1/slow?ms=600000", id: "holder")
    #expect(eventually { proxy.sandbox.counters.apiRequests - before == 1 })
    let waiter = try start(proxy, "/api/v1/slow?ms=600000", id: "waiter")
    #expect(eventually { proxy.metric("authproxy_upstream_queued_requests") == 1 })
    #expect(try holder.readResponse().status == 504)
    let response = try waiter.readResponse()
    #expect(response.status == 504)
    let body = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    let error = try #require(body["error"] as? [String: Any])
    #expect(error["code"] as? String == "upstream_timeout")
    let line = try #require(accessLine(proxy, "waiter"))
    #expect(line["status"] as? Int == 504)
    #expect(line["upstream_status"] is NSNull)
    let waited = line["duration_ms"] as? Double ?? 0
    // Without the queue's wait counted, it would get a whole --timeout after the holder's.
    #expect(waited >= 1900 && waited < 3000, "\(waited) ms")
    #expect(proxy.metric("authproxy_upstream_queued_requests") == 0)
    #expect(proxy.metric("authproxy_upstream_connections_total") == 2, "the warm-up's (the holder reused it), then the waiter's")
  }

  @Test func theFlagIsCheckedAndNamed() {
    guard
      case .failure(let errors) = ServeConfig.load(
        flags: ["upstream": "https://api.example", "max-upstream-connections": "-1"], environment: [:])
    else {
      Issue.record("--max-upstream-connections -1 was accepted")
      return
    }
    #expect(errors.problems.contains { $0.contains("--max-upstream-connections") && $0.contains("-1") })
    let config = try? ServeConfig.load(flags: ["upstream": "https://api.example"], environment: [:]).get()
    #expect(config?.maxUpstreamConnections == 256)
    let fromEnvironment = try? ServeConfig.load(
      flags: ["upstream": "https://api.example"], environment: ["AUTHPROXY_MAX_UPSTREAM_CONNECTIONS": "0"]
    ).get()
    #expect(fromEnvironment?.maxUpstreamConnections == 0)
  }
}

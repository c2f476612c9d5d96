import AuthProxy
import Foundation
import SandboxAPI
import Testing

// Requests that must never be sent twice (POST, PATCH without an Idempotency-Key) and the
// upstream connection they go on: one that answered moments ago (--reuse-window), else a new one.

private func port(_ response: HTTPResponse) -> Int? { response.json?["peer_port"] as? Int }

private func post(_ proxy: ProxyHarness, _ target: String, headers: [(String, String)] = []) throws -> HTTPResponse {
  try request(port: proxy.port, method: "POST", target: target, headers: headers, body: Array(#"{"x":1}"#.utf8))
}

@Suite struct UpstreamReuseTests {

  @Test func aPOSTWithoutIdempotencyKeyReusesAConnectionThatJustAnswered() throws {
    // The clock stands still: every POST comes within the 2 s window, however loaded the machine.
    let proxy = try ProxyHarness(workers: 1, monotonic: ManualMonotonicClock())
    defer { proxy.stop() }
    let warm = try #require(port(try proxy.get("/api/v1/echo")))
    for _ in 0..<5 {
      let reply = try post(proxy, "/api/v1/echo")
      #expect(reply.status == 200)
      #expect(port(reply) == warm, "the connection that just answered")
    }
    #expect(proxy.metric("authproxy_upstream_connections_total") == 1, "one TLS handshake for six requests")
  }

  @Test func withAReuseWindowOfZeroEveryPOSTOpensANewConnection() throws {
    let proxy = try ProxyHarness(workers: 1, flags: ["reuse-window": "0"])
    defer { proxy.stop() }
    let warm = try #require(port(try proxy.get("/api/v1/echo")))
    let ports = try (0..<3).map { _ in try #require(port(try post(proxy, "/api/v1/echo"))) }
    #expect(!ports.contains(warm))
    #expect(Set(ports).count == 3)
    // Idempotent requests still reuse.
    #expect(try port(proxy.get("/api/v1/echo")) != nil)
  }

  @Test func aPOSTAfterTheWindowOpensANewConnectionAndTheIdleOneStaysForGETs() throws {
    let clock = ManualMonotonicClock()
    let proxy = try ProxyHarness(workers: 1, flags: ["reuse-window": "50ms"], monotonic: clock)
    defer { proxy.stop() }
    let warm = try #require(port(try proxy.get("/api/v1/echo")))
    clock.advance(by: 0.051)  // just past the 50 ms window
    let fresh = try #require(port(try post(proxy, "/api/v1/echo")))
    #expect(fresh != warm)
    // The POST's connection answered last; a GET takes it, the older one is still pooled.
    #expect(proxy.metric("authproxy_upstream_connections_total") == 2)
  }

  @Test func aPOSTWithAnIdempotencyKeyReusesAnyPooledConnection() throws {
    let proxy = try ProxyHarness(workers: 1, flags: ["reuse-window": "0"])
    defer { proxy.stop() }
    let warm = try #require(port(try proxy.get("/api/v1/echo")))
    #expect(try port(post(proxy, "/api/v1/echo", headers: [("Idempotency-Key", "k-1")])) == warm)
  }

  /// The stale-connection race, provoked: the upstream reads the request on a reused
  /// connection, then closes it without a byte of answer.
  @Test func aReusedConnectionThatBreaksBeforeAnyAnswerFailsThePOSTTruthfullyAndNeverSendsItTwice() throws {
    let proxy = try ProxyHarness(workers: 1)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    let reply = try post(proxy, "/api/v1/reset?key=race-post")
    #expect(reply.status == 502)
    #expect(reply.errorCode == "upstream_broken_after_send")
    #expect(reply.errorMessage?.contains("may have reached the API and was not sent again") == true)
    #expect(proxy.sandbox.hits("race-post") == 1, "sent once")
    #expect(proxy.metric("authproxy_upstream_reuse_failures_total") == 1)
    // An idempotent request in the same spot is sent again on a new connection, as before.
    #expect(try proxy.get("/api/v1/echo").status == 200)
    _ = try proxy.get("/api/v1/reset?key=race-get")
    #expect(proxy.sandbox.hits("race-get") >= 2)
    #expect(proxy.metric("authproxy_upstream_reuse_failures_total") == 1)
  }
}

import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// Issue 17, point 6: from SIGTERM until exit the admin listener answers (`/readyz` 503
/// "draining", `/healthz` 200, `/metrics`), and replies sent while draining carry
/// `Connection: close`.
@Suite(.serialized) struct DrainTests {
  @Test func theAdminListenerAnswersDrainingAndRepliesCloseTheirConnection() throws {
    let proxy = try ProxyHarness(workers: 1, flags: ["drain-timeout": "60s"])
    defer { proxy.stop() }
    #expect(eventually { (try? proxy.admin("/readyz").status) == 200 })

    // A keep-alive connection that has been used and sits idle.
    let idle = try RawConnection(port: proxy.port)
    try idle.send(requestBytes(method: "GET", target: "/api/v1/products?limit=1"))
    let before = try idle.readResponse()
    #expect(before.status == 200)
    #expect(before.header("Connection") == nil, "kept alive before the drain")

    // A request held at the upstream until the test lets it go.
    let held = try RawConnection(port: proxy.port, timeoutSeconds: 30)
    try held.send(requestBytes(method: "GET", target: "/api/v1/slow?ms=600000"))
    #expect(eventually { proxy.sandbox.lastAPIRequest?.target.hasPrefix("/api/v1/slow") == true })

    proxy.runtime.shutdown()

    #expect(
      eventually {
        guard let ready = try? proxy.admin("/readyz") else { return false }
        return ready.status == 503 && ready.text.contains("draining")
      })
    let health = try proxy.admin("/healthz")
    #expect(health.status == 200)
    #expect(health.header("Connection")?.lowercased() == "close")
    let metrics = try proxy.admin("/metrics")
    #expect(metrics.status == 200)
    #expect(metrics.text.contains("authproxy_in_flight_requests 1"), "the held request is still in flight")

    // The idle keep-alive connection is closed by the proxy, not left for a reuse that fails.
    let (leftover, closedByPeer) = idle.readUntilClosed()
    #expect(closedByPeer)
    #expect(leftover.isEmpty)

    // The held request finishes, with `Connection: close`, and its connection ends.
    proxy.sandbox.wakeSleepers()
    let answer = try held.readResponse()
    #expect(answer.status == 200)
    #expect(answer.header("Connection")?.lowercased() == "close")
    #expect(held.readUntilClosed().closedByPeer)

    proxy.runtime.wait()
    #expect((try? proxy.admin("/healthz")) == nil, "the admin listener goes with the process")
  }

  @Test func aSIGTERMRightAfterStartDoesNotHang() throws {
    // The admin listener answers as soon as the control thread runs, possibly before it has
    // heard of the workers. A SIGTERM then used to stop the control loop alone, which went on
    // to join workers never told to exit (about one start in three hung). Each start below
    // ends with SIGTERM at that moment.
    let environment = ["API_USERNAME": "demo", "API_PASSWORD": "demo-password"]
    for round in 0..<12 {
      let adminPort = freePort()
      let proxy = try ProxyProcess(
        [
          "serve", "--upstream", "https://127.0.0.1:1", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:\(adminPort)",
          "--workers", "2",
        ], environment: environment)
      #expect(eventually { (try? request(port: adminPort, target: "/healthz").status) == 200 }, "round \(round)")
      #expect(proxy.stop(timeout: 15) == 0, "round \(round): SIGTERM ends the process")
    }
  }
}

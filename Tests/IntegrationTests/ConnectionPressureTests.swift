import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// The value of one sample in a /metrics text, if present.
private func sample(_ text: String, _ name: String) -> Double? {
  for row in text.split(separator: "\n") where row.hasPrefix(name + " ") { return Double(row.split(separator: " ").last!) }
  return nil
}

/// Issue 17, point 2: a connection limit, and no spinning or log flood when descriptors run
/// out; the admin listener keeps answering under connection pressure.
@Suite(.serialized) struct ConnectionPressureTests {
  let credentials = ["API_USERNAME": "demo", "API_PASSWORD": "demo-password"]

  @Test func atMaxConnectionsTheListenerPausesAndResumesWhenOneCloses() throws {
    let proxy = try ProxyHarness(workers: 1, flags: ["max-connections": "4"])
    defer { proxy.stop() }
    #expect(eventually { (try? proxy.admin("/readyz").status) == 200 })
    var open: [RawConnection] = []
    for _ in 0..<4 {
      let connection = try RawConnection(port: proxy.port)
      try connection.send(requestBytes(method: "GET", target: "/api/v1/echo"))
      #expect(try connection.readResponse().status == 200)
      open.append(connection)
    }
    // The fifth connects (the kernel's queue) but is not taken while four are open.
    let fifth = try RawConnection(port: proxy.port)
    try fifth.send(requestBytes(method: "GET", target: "/api/v1/echo"))
    #expect(
      eventually {
        guard let text = try? proxy.admin("/metrics").text else { return false }
        return sample(text, #"authproxy_accept_paused_total{reason="max_connections"}"#) == 1
          && sample(text, "authproxy_client_connections") == 4
      })
    #expect(try proxy.admin("/readyz").status == 200, "the admin listener answers at the limit")
    #expect(proxy.logs.all.filter { $0.contains("reached --max-connections") }.count == 1)

    // One closes: the fifth is taken and answered.
    open.removeFirst().shutdown()
    #expect(try fifth.readResponse().status == 200)
    #expect(proxy.logs.all.filter { $0.contains("reached --max-connections") }.count == 1, "said once a minute at most")
  }

  /// The workers share one listening socket: a client that arrives while one worker is at its
  /// share of --max-connections is taken by the other, which has room. (With one SO_REUSEPORT
  /// socket per worker, the kernel sent half such clients to the full worker's queue, where
  /// they waited for one of its connections to close.)
  @Test func aClientArrivingWhileOneWorkerIsFullIsTakenByTheOther() throws {
    let proxy = try ProxyHarness(workers: 2, flags: ["max-connections": "2"])
    defer { proxy.stop() }
    #expect(eventually { (try? proxy.admin("/readyz").status) == 200 })
    // Each round: two keep-alive clients, one per worker (1 connection each), both answered
    // at once; then both leave. Under the old sockets each round's second client had an even
    // chance of waiting the whole read timeout.
    for round in 1...4 {
      var open: [RawConnection] = []
      for _ in 0..<2 {
        let connection = try RawConnection(port: proxy.port, timeoutSeconds: 10)
        try connection.send(requestBytes(method: "GET", target: "/api/v1/echo"))
        #expect(try connection.readResponse().status == 200, "round \(round)")
        open.append(connection)
      }
      for connection in open { connection.shutdown() }
      #expect(
        eventually {
          guard let text = try? proxy.admin("/metrics").text else { return false }
          return sample(text, "authproxy_client_connections") == 0
        })
    }
  }

  /// Clients that connect at once (an app's connection pool starting) are shared between the
  /// workers whichever accepted them: before, the worker that woke first took nearly all of
  /// them and the other core idled.
  @Test func aBurstOfClientsIsSharedEvenlyBetweenTheWorkers() throws {
    let proxy = try ProxyHarness(workers: 2)
    defer { proxy.stop() }
    #expect(eventually { (try? proxy.admin("/readyz").status) == 200 })
    let clients = try (0..<8).map { _ in try RawConnection(port: proxy.port, timeoutSeconds: 10) }
    for round in 1...2 {
      for client in clients { try client.send(requestBytes(method: "GET", target: "/api/v1/echo")) }
      for client in clients { #expect(try client.readResponse().status == 200, "round \(round)") }
    }
    let perWorker = { (worker: Int) -> Double? in
      guard let text = try? proxy.admin("/metrics").text else { return nil }
      return sample(text, #"authproxy_worker_client_connections{worker="\#(worker)"}"#)
    }
    #expect(
      eventually { perWorker(0) == 4 && perWorker(1) == 4 }, "\(String(describing: perWorker(0))), \(String(describing: perWorker(1)))")
    for client in clients { client.shutdown() }
    #expect(eventually { perWorker(0) == 0 && perWorker(1) == 0 })
  }

  /// The issue's case: an fd limit of a few dozen and more clients than that. The default
  /// --max-connections (derived from the limit) keeps descriptors for the admin listener.
  @Test func theDefaultLimitKeepsTheAdminListenerAnsweringUnderAnFdLimit() throws {
    let directory = temporaryDirectory()
    let sandbox = try SandboxAPI.start(pkiDirectory: directory + "/pki")
    defer { sandbox.stop() }
    let port = freePort()
    let adminPort = freePort()
    let proxy = try ProxyProcess(
      [
        "--nofile=128", "--", authproxyBinary, "serve", "--upstream", sandbox.baseURL, "--ca-file", sandbox.caPath,
        "--listen", "127.0.0.1:\(port)", "--admin-listen", "127.0.0.1:\(adminPort)", "--workers", "1",
        "--access-log", directory + "/access.log",
      ], environment: credentials, executable: "/usr/bin/prlimit")
    let stderr = PipeCollector(proxy.stderr.fileHandleForReading)
    defer { _ = proxy.stop() }
    #expect(eventually(timeout: 20) { (try? request(port: adminPort, target: "/readyz").status) == 200 })
    let limit = ServeConfig.defaultMaxConnectionsFor(descriptorLimit: 128)
    var clients: [RawConnection] = []
    for _ in 0..<(limit + 20) { clients.append(try RawConnection(port: port)) }
    #expect(
      eventually {
        guard let text = try? request(port: adminPort, target: "/metrics").text else { return false }
        return sample(text, "authproxy_client_connections") == Double(limit)
          && (sample(text, #"authproxy_accept_paused_total{reason="max_connections"}"#) ?? 0) >= 1
      }, "at the limit of \(limit)")
    #expect(try request(port: adminPort, target: "/readyz").status == 200)
    #expect(try request(port: adminPort, target: "/healthz").status == 200)
    #expect(stderr.text.components(separatedBy: "reached --max-connections").count - 1 == 1)
    #expect(!stderr.text.contains("[warn]"), "no raw libevent lines")
    clients.removeAll()
  }

  /// Past the descriptors (a --max-connections too high for the fd limit): accept(2) fails
  /// with EMFILE. The listener pauses and backs off instead of spinning on the same pending
  /// connection (which used to write millions of libevent lines and burn a core).
  @Test func outOfDescriptorsTheListenerBacksOffInsteadOfSpinning() throws {
    let directory = temporaryDirectory()
    let sandbox = try SandboxAPI.start(pkiDirectory: directory + "/pki")
    defer { sandbox.stop() }
    let port = freePort()
    let adminPort = freePort()
    let started = Date()
    let proxy = try ProxyProcess(
      [
        "--nofile=64", "--", authproxyBinary, "serve", "--upstream", sandbox.baseURL, "--ca-file", sandbox.caPath,
        "--listen", "127.0.0.1:\(port)", "--admin-listen", "127.0.0.1:\(adminPort)", "--workers", "1",
        "--max-connections", "1000", "--access-log", directory + "/access.log",
      ], environment: credentials, executable: "/usr/bin/prlimit")
    let stderr = PipeCollector(proxy.stderr.fileHandleForReading)
    defer { _ = proxy.stop() }
    #expect(eventually(timeout: 20) { (try? request(port: adminPort, target: "/readyz").status) == 200 })
    var clients: [RawConnection] = []
    for _ in 0..<80 { clients.append(try RawConnection(port: port)) }
    #expect(eventually { stderr.text.contains("cannot accept connections: Too many open files") })
    // Descriptors come back: the admin listener answers again, and the count of pauses is
    // that of a back-off (at most 20 a second), not of a loop.
    clients.removeAll()
    #expect(eventually(timeout: 20) { (try? request(port: adminPort, target: "/readyz").status) == 200 })
    let text = try request(port: adminPort, target: "/metrics").text
    let pauses = sample(text, #"authproxy_accept_paused_total{reason="out_of_descriptors"}"#) ?? 0
    let seconds = Date().timeIntervalSince(started)
    #expect(pauses >= 1)
    #expect(pauses <= 20 * seconds + 5, "\(pauses) pauses in \(seconds)s")
    let lines = stderr.text.split(separator: "\n")
    #expect(lines.count < 40, "\(lines.count) diagnostic lines")
    #expect(!stderr.text.contains("[warn]"), "no raw libevent lines")
  }
}

import Glibc
import SandboxAPI
import Synchronization
import Testing
import TestSupport

@testable import AuthProxy

/// The upstream connection pool, against the sandbox over real TLS.
@Suite struct UpstreamPoolTests {
  /// A response can end from bytes its transfer held while the app was slow, with the socket
  /// still paused. Pooled that way, the connection neither noticed the upstream closing it nor
  /// read the next request's answer: the next request on it hung until the stall timeout (seen
  /// as 1 MiB replies stalling in the bench whenever the app's socket buffer was small).
  @Test func aConnectionThatComesBackPausedReadsAgainInThePool() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let loop = try EventLoop()
    let tls = UpstreamTLS(caFile: sandbox.caPath)
    let pool = try UpstreamPool(loop: loop, tls: tls, host: "localhost", port: sandbox.port, connectTimeout: 5)
    let socket = try connected(to: sandbox, on: loop, context: try TLSClientContext(tls))

    socket.pauseReading()  // as a transfer that ended from held bytes leaves it
    pool.release(socket)
    sandbox.stop()  // closes every connection it has: the pooled one must see it

    runLoop(loop, until: { socket.state == .closed })
    #expect(socket.state == .closed, "the idle connection saw the upstream close it")
  }

  /// The upstream context offers the TLS 1.3 suites AES-128-GCM first (less CPU per byte on
  /// both ends than AES-256-GCM), and an OpenSSL server left at its defaults (the sandbox; nginx
  /// and HAProxy alike) takes the client's first choice.
  @Test func tls13OffersAES128GCMFirstAndADefaultServerAgrees() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let loop = try EventLoop()
    let context = try TLSClientContext(UpstreamTLS(caFile: sandbox.caPath))
    #expect(context.tls13Suites == ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"])
    let socket = try connected(to: sandbox, on: loop, context: context)
    #expect(socket.cipherSuite == "TLS_AES_128_GCM_SHA256")
    socket.close()
  }

  /// An idle connection is kept for `maxIdleAge` seconds of the pool's clock and dropped just
  /// after, both by the periodic expiry and by the next request (which then connects anew).
  @Test func anIdleConnectionExpiresExactlyAfterMaxIdleAge() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let loop = try EventLoop()
    let clock = ManualMonotonicClock()
    let pool = try UpstreamPool(
      loop: loop, tls: UpstreamTLS(caFile: sandbox.caPath), host: "localhost", port: sandbox.port, connectTimeout: 5,
      maxIdleAge: 30, clock: clock)
    let first = Attempt()
    pool.start(first.transfer)
    runLoop(loop, until: { first.result != nil })
    #expect(first.result?.isSuccess == true)
    #expect(pool.idleCount == 1)
    clock.advance(by: 30)
    pool.expireIdle()
    #expect(pool.idleCount == 1, "idle exactly maxIdleAge: kept")
    let second = Attempt()
    pool.start(second.transfer)
    runLoop(loop, until: { second.result != nil })
    #expect(second.result?.reusedConnection == true, "taken from the pool")
    clock.advance(by: 30.01)
    let third = Attempt()
    pool.start(third.transfer)
    runLoop(loop, until: { third.result != nil })
    #expect(third.result?.isSuccess == true)
    #expect(third.result?.reusedConnection == false, "idle past maxIdleAge: dropped, a new connection")
    clock.advance(by: 30.01)
    pool.expireIdle()
    #expect(pool.idleCount == 0, "and the periodic expiry drops it too")
  }

  /// After a burst, the idle pool keeps as many connections as the recent peak of requests at
  /// once, not its cap: once the burst is out of the window, the extra connections close.
  @Test func theIdlePoolShrinksToRecentDemand() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let loop = try EventLoop()
    // A window of 3 expiry periods (expireIdle runs every second in a worker; here by hand).
    let pool = try UpstreamPool(
      loop: loop, tls: UpstreamTLS(caFile: sandbox.caPath), host: "localhost", port: sandbox.port, connectTimeout: 5,
      peakWindow: 3)
    let burst = (0..<4).map { _ in Attempt() }
    for attempt in burst { pool.start(attempt.transfer) }
    runLoop(loop, until: { burst.allSatisfy { $0.result != nil } })
    #expect(burst.allSatisfy { $0.result?.isSuccess == true })
    #expect(pool.idleCount == 4)
    #expect(pool.recentPeak == 4)
    var idleAfter: [Int] = []
    for _ in 0..<4 {
      let one = Attempt()
      pool.start(one.transfer)
      runLoop(loop, until: { one.result != nil })
      #expect(one.result?.isSuccess == true)
      pool.expireIdle()
      idleAfter.append(pool.idleCount)
    }
    // The burst stays in the window for three periods, then only one at a time is left.
    #expect(idleAfter == [4, 4, 4, 1], "\(idleAfter)")
  }

  /// With a cap of one connection, waiters go in arrival order: a waiter that may reuse takes
  /// the connection the previous attempt just left (it answered moments ago: within any
  /// `--reuse-window`); one that needs a new connection gets one in its place, and the count
  /// never goes over the cap.
  @Test func atTheCapWaitersGoInOrderAndKeepTheReuseRule() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let loop = try EventLoop()
    let pool = try UpstreamPool(
      loop: loop, tls: UpstreamTLS(caFile: sandbox.caPath), host: "localhost", port: sandbox.port, connectTimeout: 5,
      maxConnections: 1)
    let first = Attempt()
    let fresh = Attempt(freshConnection: true)
    let windowed = Attempt()
    windowed.transfer.reuseWithin = 2  // a POST without Idempotency-Key, --reuse-window 2s
    let last = Attempt()
    var order: [Int] = []
    for (n, attempt) in [first, fresh, windowed, last].enumerated() {
      attempt.onResult = { order.append(n) }
      pool.start(attempt.transfer)
    }
    #expect(pool.queuedNow == 3)
    var most = 0
    runLoop(
      loop,
      until: {
        most = max(most, pool.openConnections)
        return [first, fresh, windowed, last].allSatisfy { $0.result != nil }
      })
    #expect([first, fresh, windowed, last].allSatisfy { $0.result?.isSuccess == true && $0.status == 401 })
    #expect(order == [0, 1, 2, 3], "in arrival order")
    #expect(most == 1, "never more than the cap open")
    #expect(first.result?.reusedConnection == false)
    #expect(fresh.result?.reusedConnection == false, "a request that needs a new connection never reuses one")
    #expect(windowed.result?.reusedConnection == true, "the connection that answered just now")
    #expect(last.result?.reusedConnection == true)
    #expect(pool.queuedNow == 0)
  }

  /// A waiter cancelled (its app left) is skipped, and one whose time runs out fails as
  /// `queueTimedOut` without ever being sent.
  @Test func cancelledWaitersAreSkippedAndLateOnesTimeOut() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let loop = try EventLoop()
    let pool = try UpstreamPool(
      loop: loop, tls: UpstreamTLS(caFile: sandbox.caPath), host: "localhost", port: sandbox.port, connectTimeout: 5,
      maxConnections: 1)
    // The loop does not run until the late waiter's time is up: the first attempt's handshake
    // (several round trips on the loop) cannot finish before the queue's timer fires.
    let first = Attempt()
    let gone = Attempt()
    let late = Attempt(stallTimeout: 0.2)
    pool.start(first.transfer)
    pool.start(late.transfer)
    pool.start(gone.transfer)
    #expect(pool.queuedNow == 2)
    gone.transfer.cancel()
    #expect(pool.queuedNow == 1, "a cancelled waiter is counted out at once")
    usleep(300_000)
    runLoop(loop, until: { first.result != nil && late.result != nil })
    #expect(first.result?.isSuccess == true)
    #expect(gone.result == nil, "a cancelled attempt does not call back")
    #expect(late.result?.error == .queueTimedOut)
    #expect(late.transfer.sends == 0, "never sent")
    #expect(pool.queuedNow == 0)
  }

  /// getaddrinfo can block for seconds; it must not block the worker's loop meanwhile.
  @Test func aSlowLookupDoesNotHoldUpTheLoop() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let lookup = ScriptedLookup(answers: [.gated(.real)])
    defer { lookup.open() }
    let loop = try EventLoop()
    let pool = try UpstreamPool(
      loop: loop, tls: UpstreamTLS(caFile: sandbox.caPath), host: "localhost", port: sandbox.port, connectTimeout: 30,
      lookup: lookup.run)
    let attempt = Attempt()
    pool.start(attempt.transfer)

    // Loop passes seen while the lookup was blocked in its thread.
    var ticks = 0
    func tick() {
      if lookup.isBlocked { ticks += 1 }
      if ticks < 5 { loop.after(0.01, tick) }
    }
    loop.soon(tick)
    runLoop(loop, until: { ticks >= 5 })
    #expect(ticks >= 5, "the loop ran on while the lookup was blocked")
    #expect(lookup.started == 1)
    #expect(attempt.result == nil, "the attempt waits for the answer")

    lookup.open()
    runLoop(loop, until: { attempt.result != nil })
    #expect(attempt.result?.isSuccess == true)
    #expect(attempt.status == 401, "an answer from the sandbox, read on the looked-up address")
  }

  /// A failed lookup (name servers down) keeps the last good answer: new connections go on.
  @Test func aFailedLookupKeepsTheLastGoodAnswer() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let lookup = ScriptedLookup(answers: [.now(.real), .now(.none)])
    let loop = try EventLoop()
    // A TTL of 0: every new connection asks again.
    let pool = try UpstreamPool(
      loop: loop, tls: UpstreamTLS(caFile: sandbox.caPath), host: "localhost", port: sandbox.port, connectTimeout: 30,
      dnsTTL: 0, lookup: lookup.run)
    for round in 0..<3 {
      let attempt = Attempt(freshConnection: true)
      pool.start(attempt.transfer)
      runLoop(loop, until: { attempt.result != nil && lookup.answered == lookup.started })
      #expect(attempt.result?.isSuccess == true, "round \(round)")
      #expect(attempt.status == 401, "round \(round)")
    }
    #expect(lookup.started == 3, "every new connection asked again")
    #expect(lookup.answered == 3)
  }

  /// With no answer ever had: a name that does not resolve fails as curl's 6, a lookup that
  /// takes longer than the connect timeout as its 28; neither hangs.
  @Test func withoutAnyAnswerAttemptsFailInsteadOfWaiting() throws {
    let lookup = ScriptedLookup(answers: [.now(.none), .gated(.none)])
    defer { lookup.open() }
    let loop = try EventLoop()
    let pool = try UpstreamPool(
      loop: loop, tls: UpstreamTLS(caFile: nil), host: "api.example.invalid", port: 443, connectTimeout: 0.2,
      lookup: lookup.run)
    let unresolved = Attempt()
    pool.start(unresolved.transfer)
    runLoop(loop, until: { unresolved.result != nil })
    #expect(unresolved.result?.error == .unresolvable)

    let stuck = Attempt()
    pool.start(stuck.transfer)
    runLoop(loop, until: { stuck.result != nil })
    #expect(stuck.result?.error == .timedOut)
    #expect(lookup.answered == 1, "the second lookup is still under way")
  }

  /// The trusted CAs are parsed once and every worker's context verifies with that one store
  /// (the system bundle costs about 0.8 MiB a copy); verification is as strict as before.
  @Test func contextsShareOneTrustStoreAndStillVerify() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let tls = UpstreamTLS(caFile: sandbox.caPath)
    let trust = try TrustStore(caFile: sandbox.caPath)
    let first = try TLSClientContext(tls, trust: trust)
    let second = try TLSClientContext(tls, trust: trust)
    #expect(first.verifies(with: trust) && second.verifies(with: trust))
    #expect(!(try TLSClientContext(tls)).verifies(with: trust), "without a shared store, a context loads its own")

    let loop = try EventLoop()
    for (store, expected) in [(trust, UpstreamError?.none), (try TrustStore(caFile: nil), UpstreamError.notTrusted)] {
      let pool = try UpstreamPool(
        loop: loop, tls: tls, host: "localhost", port: sandbox.port, connectTimeout: 5, trust: store)
      let attempt = Attempt()
      pool.start(attempt.transfer)
      runLoop(loop, until: { attempt.result != nil })
      #expect(attempt.result?.error == expected, "the system's store does not trust the sandbox's CA")
    }
    #expect(throws: EventError.self) { try TrustStore(caFile: "/nonexistent/ca.pem") }
  }

  /// The control plane's curl transfers (login, refresh, logout) verify with a sibling of the
  /// workers' store, which holds the same parsed certificates, instead of a CA file of their own:
  /// the store decides, whatever `tls.caFile` says. curl sets verification flags on the store it
  /// is given; the workers' store keeps its own.
  @Test func curlTransfersVerifyWithASiblingOfTheWorkersStore() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let loop = try EventLoop()
    let workers = try TrustStore(caFile: sandbox.caPath)
    let system = try TrustStore(caFile: nil)
    let cases: [(caFile: String?, trust: TrustStore?, expected: Int32, why: String)] = [
      (nil, try workers.sibling(), 0, "curl alone would use the system bundle, which lacks the sandbox's CA"),
      (sandbox.caPath, try system.sibling(), 60, "the store, not the CA file, is what the peer is checked with"),
      (sandbox.caPath, nil, 0, "without a store, curl loads the CA file as before"),
    ]
    for test in cases {
      var request = CurlRequest(
        url: sandbox.baseURL + "/api/v1/products", method: "GET", headerLines: [], body: nil,
        tls: UpstreamTLS(caFile: test.caFile), connectTimeoutMs: 5000, stallTimeoutSeconds: 5)
      request.trust = test.trust
      // A multi of its own: curl would resume the previous case's TLS session, unverified.
      let multi = try CurlMulti(loop: loop)
      let transfer = try CurlTransfer(request)
      var result: CurlResult?
      var status = 0
      transfer.onHead = { code, _ in status = code }
      transfer.onComplete = { result = $0 }
      multi.start(transfer)
      runLoop(loop, until: { result != nil })
      #expect(result?.code == test.expected, "\(test.why)")
      if test.expected == 0 { #expect(status == 401, "a verified exchange with the API (no token: 401)") }
    }
    #expect(cases[0].trust!.flags != 0, "curl set its flags on the sibling it verified with")
    #expect(workers.flags == 0 && system.flags == 0, "and none on the stores the siblings came from")
  }

  /// Runs `loop` until `condition` holds, checked every 10 ms, for at most 10 s.
  /// A TLS connection to the sandbox, verified and open, a `SocketWatcher` its delegate.
  private func connected(to sandbox: SandboxAPI, on loop: EventLoop, context: TLSClientContext) throws -> TLSClientSocket {
    let socket = TLSClientSocket(
      loop: loop, context: context, scratch: ReadScratch(), host: "localhost",
      addresses: SocketAddress.resolve(host: "localhost", port: sandbox.port), timeout: 5)
    socket.delegate = SocketWatcher(loop: loop)
    runLoop(loop, until: { socket.state == .open || socket.state == .closed })
    try #require(socket.state == .open, "connected and verified")
    return socket
  }

  private func runLoop(_ loop: EventLoop, until condition: @escaping () -> Bool) {
    let deadline = monotonicSeconds() + 10
    func check() {
      if condition() || monotonicSeconds() > deadline { return loop.stop() }
      loop.after(0.01, check)
    }
    loop.soon(check)
    loop.run()
  }
}

/// Hears a socket's callbacks while a test holds it (the pool takes the delegate away).
private final class SocketWatcher: TLSClientSocketDelegate {
  let loop: EventLoop
  init(loop: EventLoop) { self.loop = loop }
  func socketOpened(_ socket: TLSClientSocket) {}
  func socket(_ socket: TLSClientSocket, received bytes: UnsafeRawBufferPointer) {}
  func socket(_ socket: TLSClientSocket, closed failure: TLSSocketFailure?) {}
  func socketTimerFired(_ socket: TLSClientSocket) {}
}

/// One upstream attempt, recorded: a GET without a token (the sandbox answers 401).
private final class Attempt: UpstreamTransferDelegate {
  let transfer: UpstreamTransfer
  var status: Int?
  var result: UpstreamResult?
  var onResult: (() -> Void)?

  init(freshConnection: Bool = false, stallTimeout: Double = 10) {
    transfer = UpstreamTransfer(
      head: Array("GET /api/v1/products HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8), body: [], isHEAD: false,
      freshConnection: freshConnection, stallTimeout: stallTimeout)
    transfer.delegate = self
  }

  func transferHead(_ transfer: UpstreamTransfer, status: Int, headers: HTTPFields, contentLength: Int?) { self.status = status }
  func transferData(_ transfer: UpstreamTransfer, _ bytes: UnsafeRawBufferPointer) -> Bool { true }
  func transferCompleted(_ transfer: UpstreamTransfer, _ result: UpstreamResult) {
    self.result = result
    onResult?()
  }
}

/// A stand-in for getaddrinfo that answers from a script, in order (the last answer repeats):
/// the real addresses or none, at once or only after `open()`.
private final class ScriptedLookup: Sendable {
  enum Answer: Sendable {
    case real, none
  }
  enum Step: Sendable {
    case now(Answer)
    case gated(Answer)
  }
  private let answers: [Step]
  private let calls = Atomic<Int>(0)
  private let done = Atomic<Int>(0)
  private let gate = Atomic<Bool>(false)
  private let blocked = Atomic<Bool>(false)

  init(answers: [Step]) { self.answers = answers }

  var started: Int { calls.load(ordering: .acquiring) }
  var answered: Int { done.load(ordering: .acquiring) }
  func open() { gate.store(true, ordering: .releasing) }
  /// A gated answer is waiting for `open()`.
  var isBlocked: Bool { blocked.load(ordering: .acquiring) }

  /// Runs on the resolver's thread.
  func run(host: String, port: Int) -> [SocketAddress] {
    let n = calls.add(1, ordering: .acquiringAndReleasing).oldValue
    defer { done.add(1, ordering: .acquiringAndReleasing) }
    let answer: Answer
    switch answers[min(n, answers.count - 1)] {
    case .now(let a): answer = a
    case .gated(let a):
      // Bounded, so that a lookup run on the loop's own thread fails the test instead of hanging it.
      blocked.store(true, ordering: .releasing)
      let deadline = monotonicSeconds() + 20
      while !gate.load(ordering: .acquiring) && monotonicSeconds() < deadline { usleep(1000) }
      blocked.store(false, ordering: .releasing)
      answer = a
    }
    return answer == .real ? SocketAddress.resolve(host: host, port: port) : []
  }
}

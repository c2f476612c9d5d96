import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// Slow, stalled and vanished clients: the header timeout, backpressure from a client that stops
/// reading, cancelling the upstream transfer of a client that left, and the idle timeout.
@Suite(.serialized) struct SlowClientTests {
  let credentials = ["API_USERNAME": "demo", "API_PASSWORD": "demo-password"]

  // MARK: Slow request heads

  // The exact boundaries (not before the timeout, at once after it) are checked against the
  // listener alone in ClientTimeoutTests; these run the whole proxy with a manual clock, and
  // SlowClientTimingTests keeps one real-time run of each.

  @Test func aClientTricklingItsHeadIsCutOffAfterTheHeaderTimeoutWith408() throws {
    let clock = ManualMonotonicClock()
    let proxy = try ProxyHarness(workers: 1, flags: ["header-timeout": "2s"], monotonic: clock)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    let before = proxy.sandbox.counters.apiRequests
    let head = Array("GET /api/v1/echo HTTP/1.1\r\nHost: x\r\nX-Slow: \(String(repeating: "s", count: 200))\r\n\r\n".utf8)
    let client = try PacedConnection(port: proxy.port)
    #expect(client.send(head[0..<40]))
    // The one worker read those bytes before it answered a request that came after them.
    #expect(try proxy.get("/api/v1/echo").status == 200)
    #expect(!client.waitReadable(timeout: 0), "no answer while the clock stands still")
    clock.advance(by: 2.5)
    let response = try #require(try client.readUntilClosed(timeout: 10), "the connection is closed after the 408")
    #expect(response.status == 408)
    #expect(response.header("Content-Type") == "application/json")
    #expect(response.errorCode == "request_timeout")
    let error = response.json?["error"] as? [String: Any]
    #expect(error?["request_id"] as? String == response.header("X-Request-ID"))
    #expect(proxy.sandbox.counters.apiRequests == before + 1, "only the second GET went upstream")
    #expect(try proxy.get("/api/v1/echo").status == 200, "the proxy still serves")
  }

  @Test func aClientTricklingItsBodyIsCutOffAfterTheTimeoutWith408() throws {
    let clock = ManualMonotonicClock()
    let proxy = try ProxyHarness(workers: 1, flags: ["timeout": "2s"], monotonic: clock)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    let before = proxy.sandbox.counters.apiRequests
    let client = try PacedConnection(port: proxy.port)
    #expect(client.send(Array("POST /api/v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\nxxxx".utf8)[...]))
    #expect(try proxy.get("/api/v1/echo").status == 200)
    #expect(!client.waitReadable(timeout: 0), "no answer while the clock stands still")
    clock.advance(by: 2.5)
    let response = try #require(try client.readUntilClosed(timeout: 10), "the connection is closed after the 408")
    #expect(response.status == 408)
    #expect(response.errorCode == "request_timeout")
    #expect(response.errorMessage?.contains("body") == true)
    #expect(proxy.sandbox.counters.apiRequests == before + 1, "nothing half-received went upstream")
  }

  @Test func aClientSendingItsHeadInTimeIsServedThoughItArrivesInPieces() throws {
    let proxy = try ProxyHarness(workers: 1, flags: ["header-timeout": "2s"])
    defer { proxy.stop() }
    let head = Array("GET /api/v1/echo?pieces HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n".utf8)
    let client = try PacedConnection(port: proxy.port)
    // Three pieces 0.5 s apart: 1 s in all, under the 2 s limit.
    for (i, range) in [0..<10, 10..<30, 30..<head.count].enumerated() {
      if i > 0 { #expect(!client.waitReadable(timeout: 0.5)) }
      #expect(client.send(head[range]))
    }
    let response = try #require(try client.readResponse(timeout: 10))
    #expect(response.status == 200)
    #expect(response.json?["target"] as? String == "/api/v1/echo?pieces")
  }

  // MARK: A client that stops reading

  @Test func aClientThatStopsReadingMakesTheProxyStopReadingTheUpstreamWithFlatMemory() throws {
    let size = 512 * 1024 * 1024
    let run = try ProxyProcessWithSandbox(credentials: credentials)
    defer { run.stop() }
    let baselineKiB = try #require(run.proxy.memoryKiB("VmRSS"))
    let expected = SHA256Hasher()
    patternPieces(size: size) { expected.update($0) }

    let hasher = SHA256Hasher()
    var received = 0
    var pause: PauseObservation?
    let connection = try RawConnection(port: run.port)
    try connection.send(requestBytes(method: "GET", target: "/api/v1/bytes?size=\(size)"))
    let response = try connection.readResponse { piece in
      hasher.update(piece)
      received += piece.count
      if pause == nil && received >= 4 * 1024 * 1024 {
        // Stop reading for a while: first the socket buffers fill, then the proxy must stop
        // reading the upstream (its upstream socket's receive queue stays full and unread).
        pause = run.observe(seconds: 4)
      }
    }
    let observed = try #require(pause)
    #expect(response.status == 200)
    #expect(received == size)
    #expect(hasher.finalize() == expected.finalize(), "every byte intact")
    #expect(
      observed.peakRSSKiB - baselineKiB < 32 * 1024,
      "RSS grew \((observed.peakRSSKiB - baselineKiB) / 1024) MiB over \(baselineKiB / 1024) MiB while the client did not read")
    #expect(observed.upstreamStalled, "the proxy stopped reading the upstream: \(observed.lastQueues)")
    let peakKiB = try #require(run.proxy.memoryKiB("VmHWM"))
    #expect(peakKiB - baselineKiB < 32 * 1024, "peak RSS \(peakKiB) KiB, idle \(baselineKiB) KiB")
  }

  // MARK: A client that leaves

  @Test func aClientThatLeavesMidResponseMakesTheProxyCancelTheUpstreamTransfer() throws {
    let size = 512 * 1024 * 1024
    let run = try ProxyProcessWithSandbox(credentials: credentials)
    defer { run.stop() }
    let client = try PacedConnection(port: run.port)
    #expect(client.send(requestBytes(method: "GET", target: "/api/v1/bytes?size=\(size)")[...]))
    #expect(try client.read(atLeast: 1024 * 1024, timeout: 20) >= 1024 * 1024)
    // The client stops reading: the transfer pauses and its upstream socket fills up. That socket
    // is the only one of the proxy's with a backlog.
    var streaming: TCPSocket?
    #expect(
      eventually(timeout: 20) {
        streaming = run.upstreamSockets().first { $0.rxQueue > 64 * 1024 }
        return streaming != nil
      })
    let upstream = try #require(streaming)
    client.close()
    #expect(
      eventually(timeout: 10) { !run.upstreamSockets().contains { $0.inode == upstream.inode } },
      "the proxy closed its upstream connection: \(run.upstreamSockets())")
    #expect(
      eventually(timeout: 10) {
        !TCPSocket.all().contains { $0.localPort == run.sandbox.port && $0.remotePort == upstream.localPort && $0.state == .established }
      }, "the sandbox's end of the stream is closed")
    var line: [String: Any]?
    #expect(
      eventually(timeout: 10) {
        line = run.accessLog().first { $0["path"] as? String == "/api/v1/bytes" }
        return line != nil
      })
    #expect(line?["error"] as? String == "client_closed")
    #expect((line?["bytes_out"] as? Int ?? size) < size)
    #expect((try? request(port: run.port, target: "/api/v1/echo").status) == 200, "the proxy still serves")
  }

  @Test func aClientThatLeavesBeforeItsAnswerLeavesTheUpstreamConnectionPooled() throws {
    let proxy = try ProxyHarness(workers: 1)
    defer { proxy.stop() }
    let metric = proxy.metric
    #expect(try proxy.get("/api/v1/echo").status == 200)
    #expect(eventually(timeout: 10) { metric("authproxy_upstream_idle_connections") == 1 })
    #expect(metric("authproxy_upstream_connections_total") == 1)
    let connection = try RawConnection(port: proxy.port, timeoutSeconds: 15)
    try connection.send(requestBytes(method: "GET", target: "/api/v1/slow?ms=300"))
    #expect(eventually(timeout: 10) { metric("authproxy_in_flight_requests") == 1 }, "sent on the pooled connection")
    #expect(metric("authproxy_upstream_idle_connections") == 0)
    connection.shutdown()
    // The proxy reads the answer when it comes, throws it away and pools the connection
    // again, instead of a new TLS handshake for the next request.
    #expect(
      eventually(timeout: 10) {
        proxy.accessLog().contains { $0["error"] as? String == "client_closed" }
          && metric("authproxy_upstream_idle_connections") == 1
      })
    #expect(try proxy.get("/api/v1/echo").status == 200)
    #expect(metric("authproxy_upstream_connections_total") == 1, "the next request went on the same connection")
  }

  // MARK: Idle connections

  @Test func aConnectionThatSendsNothingIsClosedAfterTheTimeout() throws {
    let clock = ManualMonotonicClock()
    let proxy = try ProxyHarness(workers: 1, flags: ["timeout": "2s"], monotonic: clock)
    defer { proxy.stop() }
    let connection = try RawConnection(port: proxy.port, timeoutSeconds: 15)
    // Accepted (by the one worker) before it answered a later connection's request.
    #expect(try proxy.get("/api/v1/echo").status == 200)
    clock.advance(by: 2.5)
    #expect(try connection.isClosedByPeer())
  }

  @Test func anIdleKeepAliveConnectionIsClosedAfterTheTimeout() throws {
    let clock = ManualMonotonicClock()
    let proxy = try ProxyHarness(workers: 1, flags: ["timeout": "2s"], monotonic: clock)
    defer { proxy.stop() }
    let connection = try RawConnection(port: proxy.port, timeoutSeconds: 15)
    try connection.send(requestBytes(method: "GET", target: "/api/v1/echo"))
    #expect(try connection.readResponse().status == 200)
    clock.advance(by: 1.5)
    try connection.send(requestBytes(method: "GET", target: "/api/v1/echo"))
    #expect(try connection.readResponse().status == 200, "kept alive between requests, idle 1.5 s of 2")
    clock.advance(by: 2.5)
    #expect(try connection.isClosedByPeer())
  }
}

// MARK: - Support

/// The bytes of `/api/v1/bytes?size=N` (byte i is i % 251), in pieces.
func patternPieces(size: Int, _ body: (ArraySlice<UInt8>) -> Void) {
  var pattern = [UInt8](repeating: 0, count: 251 * 1024)
  for i in 0..<pattern.count { pattern[i] = UInt8(i % 251) }
  var remaining = size
  while remaining > 0 {
    let n = min(remaining, pattern.count)
    body(pattern[0..<n])
    remaining -= n
  }
}

/// What the test saw of the proxy process while its client did not read.
private struct PauseObservation {
  var peakRSSKiB: Int
  /// Some upstream socket had unread bytes that stayed unread for the last second.
  var upstreamStalled: Bool
  var lastQueues: [TCPSocket]
}

/// The sandbox in this process and the built `authproxy` binary (one worker) in front of it.
private final class ProxyProcessWithSandbox {
  let directory = temporaryDirectory()
  let sandbox: SandboxAPI
  let proxy: ProxyProcess
  let port = freePort()

  init(credentials: [String: String]) throws {
    sandbox = try SandboxAPI.start(pkiDirectory: directory + "/pki")
    proxy = try ProxyProcess(
      [
        "serve", "--upstream", sandbox.baseURL, "--ca-file", sandbox.caPath, "--listen", "127.0.0.1:\(port)",
        "--admin-listen", "127.0.0.1:\(freePort())", "--workers", "1", "--access-log", directory + "/access.log",
      ], environment: credentials)
    let port = port
    guard eventually(timeout: 20, { (try? request(port: port, target: "/api/v1/echo").status) == 200 }) else {
      _ = proxy.stop()
      sandbox.stop()
      throw HTTPClientError(description: "the proxy did not come up")
    }
  }

  func stop() {
    _ = proxy.stop()
    sandbox.stop()
  }

  /// The proxy's established connections to the sandbox.
  func upstreamSockets() -> [TCPSocket] {
    let inodes = socketInodes(pid: proxy.pid)
    return TCPSocket.all().filter { inodes.contains($0.inode) && $0.remotePort == sandbox.port && $0.state == .established }
  }

  /// Samples the proxy every 50 ms for `seconds` (a measuring window, not a wait for something).
  func observe(seconds: Double) -> PauseObservation {
    var samples: [(at: Date, rss: Int, queues: [UInt64: Int])] = []
    let start = Date()
    while Date().timeIntervalSince(start) < seconds {
      let queues = Dictionary(upstreamSockets().map { ($0.inode, $0.rxQueue) }) { first, _ in first }
      samples.append((Date(), proxy.memoryKiB("VmRSS") ?? Int.max, queues))
      usleep(50_000)
    }
    let last = samples.last!
    let secondBefore = samples.last { last.at.timeIntervalSince($0.at) >= 1 } ?? samples[0]
    let stalled = last.queues.contains { inode, queue in queue > 0 && secondBefore.queues[inode] == queue }
    return PauseObservation(peakRSSKiB: samples.map(\.rss).max() ?? Int.max, upstreamStalled: stalled, lastQueues: upstreamSockets())
  }

  func accessLog() -> [[String: Any]] {
    let text = (try? String(contentsOfFile: directory + "/access.log", encoding: .utf8)) ?? ""
    return text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
  }
}

/// One line of /proc/net/tcp or tcp6.
struct TCPSocket: CustomStringConvertible {
  enum State: Int {
    case established = 1, synSent, synReceived, finWait1, finWait2, timeWait, close, closeWait, lastAck, listen, closing
  }
  var localPort: Int
  var remotePort: Int
  var state: State?
  var txQueue: Int
  var rxQueue: Int
  var inode: UInt64

  var description: String { "\(localPort)->\(remotePort) \(state.map { "\($0)" } ?? "?") tx \(txQueue) rx \(rxQueue)" }

  /// Every TCP socket of this network namespace.
  static func all() -> [TCPSocket] {
    ["/proc/net/tcp", "/proc/net/tcp6"].flatMap { path -> [TCPSocket] in
      readProcFile(path).split(separator: "\n").dropFirst().compactMap { line in
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
        let f = line.split(separator: " ", omittingEmptySubsequences: true)
        guard f.count >= 10, let local = f[1].split(separator: ":").last, let remote = f[2].split(separator: ":").last else { return nil }
        let queues = f[4].split(separator: ":")
        guard queues.count == 2, let lp = Int(local, radix: 16), let rp = Int(remote, radix: 16), let st = Int(f[3], radix: 16),
          let tx = Int(queues[0], radix: 16), let rx = Int(queues[1], radix: 16), let inode = UInt64(f[9])
        else { return nil }
        return TCPSocket(localPort: lp, remotePort: rp, state: State(rawValue: st), txQueue: tx, rxQueue: rx, inode: inode)
      }
    }
  }
}

/// The whole of a /proc file. (Foundation stops after the first page of a seq_file such as
/// /proc/net/tcp; its size is given as 0.)
func readProcFile(_ path: String) -> String {
  let fd = open(path, O_RDONLY)
  guard fd >= 0 else { return "" }
  defer { close(fd) }
  var bytes: [UInt8] = []
  var chunk = [UInt8](repeating: 0, count: 65536)
  while true {
    let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    if n < 0 && errno == EINTR { continue }
    guard n > 0 else { break }
    bytes.append(contentsOf: chunk[0..<n])
  }
  return String(decoding: bytes, as: UTF8.self)
}

/// The inodes of the sockets process `pid` has open.
func socketInodes(pid: Int32) -> Set<UInt64> {
  let dir = "/proc/\(pid)/fd"
  let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
  var inodes: Set<UInt64> = []
  for entry in entries {
    guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/" + entry),
      target.hasPrefix("socket:["), let inode = UInt64(target.dropFirst("socket:[".count).dropLast())
    else { continue }
    inodes.insert(inode)
  }
  return inodes
}

/// A client socket the test paces itself: sends what it is given, waits for readability with
/// poll, reads as slowly as it likes. (RawConnection blocks; these tests must not.)
final class PacedConnection {
  private var fd: Int32
  private var buffered: [UInt8] = []

  init(port: Int, receiveBuffer: Int? = nil) throws {
    fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    if var size = receiveBuffer.map(Int32.init) {
      // Before connect, so that the window is small from the start (no autotuning).
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }
    let rc = connectIPv4(fd, port: port)
    guard rc == 0 else {
      Glibc.close(fd)
      throw HTTPClientError(description: "connect to \(port) failed: errno \(errno)")
    }
  }

  deinit { close() }

  func close() {
    guard fd >= 0 else { return }
    Glibc.close(fd)
    fd = -1
  }

  /// False once the peer no longer takes bytes.
  func send(_ bytes: ArraySlice<UInt8>) -> Bool {
    var rest = bytes
    while !rest.isEmpty {
      let n = rest.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else { return false }
      rest = rest.dropFirst(n)
    }
    return true
  }

  /// Waits up to `timeout` for the socket to have bytes (or EOF) to read.
  func waitReadable(timeout: Double) -> Bool {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&p, 1, Int32(timeout * 1000)) > 0
  }

  /// Reads what is there (at most `limit`), waiting up to `timeout` for something; 0 at EOF or timeout.
  private func fill(limit: Int = 65536, timeout: Double) throws -> Int {
    guard waitReadable(timeout: timeout) else { return 0 }
    var chunk = [UInt8](repeating: 0, count: limit)
    let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    if n < 0 {
      // A reset after the answer is a close too.
      if errno == ECONNRESET { return 0 }
      throw HTTPClientError(description: "recv failed: errno \(errno)")
    }
    buffered.append(contentsOf: chunk[0..<n])
    return n
  }

  /// Reads until at least `count` bytes arrived in all (or `timeout`); returns how many did.
  func read(atLeast count: Int, timeout: Double) throws -> Int {
    let deadline = Date().addingTimeInterval(timeout)
    var total = buffered.count
    buffered.removeAll()
    while total < count, Date() < deadline {
      total += try fill(timeout: deadline.timeIntervalSinceNow)
      buffered.removeAll()
    }
    return total
  }

  /// Reads until the peer closes; the response in it, or nil when the peer did not close in time.
  func readUntilClosed(timeout: Double) throws -> HTTPResponse? {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      if try fill(timeout: max(0, deadline.timeIntervalSinceNow)) == 0 {
        if Date() >= deadline { return nil }
        return Self.parseHead(buffered).map { head in
          var response = head.response
          response.body = Array(buffered[head.bodyStart...].prefix(head.length))
          return response
        }
      }
    }
    return nil
  }

  /// Reads one response with a Content-Length, at most `bytesPerTick` each `tick` seconds.
  func readResponse(timeout: Double, bytesPerTick: Int = 65536, tick: Double = 0) throws -> HTTPResponse? {
    let deadline = Date().addingTimeInterval(timeout)
    var nextTick = Date()
    var head: (response: HTTPResponse, bodyStart: Int, length: Int)?
    while Date() < deadline {
      if head == nil { head = Self.parseHead(buffered) }
      if let head, buffered.count - head.bodyStart >= head.length {
        var response = head.response
        response.body = Array(buffered[head.bodyStart..<(head.bodyStart + head.length)])
        return response
      }
      if tick > 0 {
        let wait = nextTick.timeIntervalSinceNow
        if wait > 0 { usleep(UInt32(wait * 1_000_000)) }  // the pace of a slow reader
        nextTick = nextTick.addingTimeInterval(tick)
      }
      var got = 0
      while got < bytesPerTick {
        let n = try fill(limit: bytesPerTick - got, timeout: got == 0 ? max(0, deadline.timeIntervalSinceNow) : 0)
        if n == 0 { break }
        got += n
      }
      if got == 0 { return nil }
    }
    return nil
  }

  /// A response head (no body), where its body starts and the length it announced.
  private static func parseHead(_ bytes: [UInt8]) -> (response: HTTPResponse, bodyStart: Int, length: Int)? {
    let separator: [UInt8] = [13, 10, 13, 10]
    guard let end = bytes.indices.first(where: { bytes[$0...].starts(with: separator) }) else { return nil }
    let lines = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
    let parts = lines[0].split(separator: " ", maxSplits: 2)
    guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
    let headers = lines.dropFirst().compactMap { line -> (name: String, value: String)? in
      guard let colon = line.firstIndex(of: ":") else { return nil }
      return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
    }
    let response = HTTPResponse(status: status, headers: headers, body: [])
    return (response, end + 4, response.header("Content-Length").flatMap(Int.init) ?? Int.max)
  }
}

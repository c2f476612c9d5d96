import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// A TCP listener on loopback that plays a broken upstream, on plain threads and blocking
/// sockets: it relays to a real upstream, or accepts and never answers, or answers a TLS
/// ClientHello with garbage. The mode applies to connections accepted from then on;
/// `dropConnections()` cuts the ones already open (the proxy's pooled connections).
final class FaultServer: @unchecked Sendable {
  enum Mode: Sendable {
    /// Relay bytes both ways to 127.0.0.1:port.
    case relay(to: Int)
    /// Accept, read everything, answer nothing.
    case silent
    /// Read the ClientHello, answer with plain-text HTTP, close.
    case garbage
  }

  var port: Int { listener.port }
  private let listener: ThreadedListener
  private let lock = NSLock()
  private var mode: Mode

  init(_ mode: Mode) throws {
    self.mode = mode
    listener = try ThreadedListener()
    listener.start { [self] fd in connection(fd, mode: lock.withLock { self.mode }) }
  }

  deinit { stop() }

  var acceptedCount: Int { listener.acceptedCount }

  func setMode(_ mode: Mode) { lock.withLock { self.mode = mode } }

  /// Cuts every connection open now (both directions, no answer).
  func dropConnections() { listener.dropConnections() }

  /// Stops listening, cuts every connection, waits for the threads, closes the sockets.
  func stop() { listener.stop() }

  /// What to do with a connection accepted in this mode.
  private func connection(_ fd: Int32, mode: Mode) -> @Sendable () -> Void {
    switch mode {
    case .silent:
      return { [self] in drain(fd) }
    case .garbage:
      return { [self] in
        var buffer = [UInt8](repeating: 0, count: 4096)
        _ = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        write(fd, Array("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nthis is not TLS\r\n".utf8))
        shutdown(fd, Int32(SHUT_RDWR))
        drain(fd)
      }
    case .relay(let target):
      return { [self] in relay(fd, to: target) }
    }
  }

  /// Reads and discards until the connection ends.
  private func drain(_ fd: Int32) {
    var buffer = [UInt8](repeating: 0, count: 65536)
    while buffer.withUnsafeMutableBytes({ recv(fd, $0.baseAddress, $0.count, 0) }) > 0 {}
  }

  private func write(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
      let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      guard n > 0 else { return }
      offset += n
    }
  }

  private func relay(_ client: Int32, to target: Int) {
    let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    let connected = connectIPv4(upstream, port: target)
    let registered = listener.track(upstream)
    guard registered, connected == 0 else {
      if !registered { close(upstream) }
      shutdown(client, Int32(SHUT_RDWR))
      return
    }
    listener.spawn { [self] in pump(from: upstream, to: client) }
    pump(from: client, to: upstream)
  }

  /// Copies bytes one way until EOF (then passes the EOF on) or an error (then cuts both).
  private func pump(from source: Int32, to sink: Int32) {
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      let n = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, $0.count, 0) }
      if n == 0 {
        shutdown(sink, Int32(SHUT_WR))
        return
      }
      if n < 0 {
        shutdown(source, Int32(SHUT_RDWR))
        shutdown(sink, Int32(SHUT_RDWR))
        return
      }
      write(sink, Array(buffer[0..<n]))
    }
  }
}

/// What an app read from one request, up to the moment the proxy closed the connection.
private struct RawExchange {
  var bytes: [UInt8]
  /// The peer closed (EOF or reset), as opposed to the read timing out.
  var closedByPeer: Bool

  var head: String? {
    guard let end = bytes.firstRange(of: Array("\r\n\r\n".utf8)) else { return nil }
    return String(decoding: bytes[..<end.lowerBound], as: UTF8.self)
  }
  var status: Int? { head.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } }
  var body: ArraySlice<UInt8> {
    guard let end = bytes.firstRange(of: Array("\r\n\r\n".utf8)) else { return [] }
    return bytes[end.upperBound...]
  }
  func header(_ name: String) -> String? {
    head?.split(separator: "\r\n").dropFirst().first { $0.lowercased().hasPrefix(name.lowercased() + ":") }
      .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
  }
}

/// Sends `bytes` and reads until the proxy closes the connection, or `timeout` seconds of silence.
private func sendAndReadUntilClosed(port: Int, _ bytes: [UInt8], timeout: Int = 10) throws -> RawExchange {
  let connection = try RawConnection(port: port, timeoutSeconds: timeout)
  try connection.send(bytes)
  let (received, closed) = connection.readUntilClosed()
  return RawExchange(bytes: received, closedByPeer: closed)
}

/// A GET through the proxy with a known X-Request-ID: the response, its access-log line and
/// the seconds it took.
private func timedGet(_ proxy: ProxyHarness, _ target: String) throws -> (response: HTTPResponse, log: [String: Any], seconds: Double) {
  let requestID = "fault-\(UUID().uuidString)"
  let start = Date()
  let response = try request(port: proxy.port, target: target, headers: [("X-Request-ID", requestID)])
  let seconds = Date().timeIntervalSince(start)
  let log = try #require(accessLine(proxy, requestID), "no access-log line for \(target)")
  return (response, log, seconds)
}

/// A proxy-made error as SPEC §4 has it: JSON with code, message and the request's id.
private func expectProxyError(_ response: HTTPResponse, status: Int, code: String, sourceLocation: SourceLocation = #_sourceLocation) {
  #expect(response.status == status, sourceLocation: sourceLocation)
  #expect(response.header("Content-Type") == "application/json", sourceLocation: sourceLocation)
  #expect(response.errorCode == code, "\(response.text)", sourceLocation: sourceLocation)
  let requestID = (response.json?["error"] as? [String: Any])?["request_id"] as? String
  #expect(requestID != nil && requestID == response.header("X-Request-ID"), sourceLocation: sourceLocation)
}

/// The upstream failing in each way it can (SPEC §4): the app gets the right JSON error fast,
/// the access log names the cause, and the proxy serves again once the upstream is back.
@Suite(.serialized) struct UpstreamFaultTests {
  static let quick = ["retries": "1", "retry-delay": "100ms", "timeout": "2s", "connect-timeout": "2s"]

  @Test func aRefusedConnectionGives502AndTheProxyRecoversWhenTheUpstreamReturnsOnTheSamePort() throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.quick)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)
    let port = proxy.sandbox.port
    proxy.sandbox.stop()

    for _ in 0..<2 {
      let (response, log, seconds) = try timedGet(proxy, "/api/v1/echo")
      expectProxyError(response, status: 502, code: "upstream_unreachable")
      #expect(response.errorMessage?.contains("refused") == true, "\(response.errorMessage ?? "")")
      #expect(seconds < 2, "\(seconds)s")
      #expect(log["error"] as? String == "upstream_unreachable")
      #expect(log["status"] as? Int == 502)
      #expect(log["attempts"] as? Int == 2, "a refused connection is worth a retry")
    }
    #expect(try proxy.admin("/healthz").status == 200)

    // A HEAD gets the same answer without a body, and the app's keep-alive connection stays
    // in step: the next response on it parses.
    let connection = try RawConnection(port: proxy.port)
    try connection.send(requestBytes(method: "HEAD", target: "/api/v1/products"))
    let head = try connection.readResponse(forHEAD: true)
    #expect(head.status == 502)
    #expect(head.header("X-Request-ID") != nil)
    try connection.send(requestBytes(method: "GET", target: "/api/v1/products"))
    let next = try connection.readResponse()
    expectProxyError(next, status: 502, code: "upstream_unreachable")

    // Back on the same port, with the same CA; it knows nothing of the old token: the proxy
    // logs in again on the 401 and replays.
    let revived = try SandboxAPI.start(port: port, pkiDirectory: proxy.directory + "/pki")
    defer { revived.stop() }
    let (response, log, _) = try timedGet(proxy, "/api/v1/echo")
    #expect(response.status == 200)
    #expect(log["reauth"] as? Bool == true)
    #expect(revived.counters.logins == 1)
  }

  /// Pooled upstream connections keep their read event: when the upstream closes them while
  /// idle, they leave the pool at once, and the next request never meets a dead connection.
  @Test func pooledConnectionsTheUpstreamClosedAreNotUsedAgain() throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.quick)
    defer { proxy.stop() }
    for _ in 0..<3 { #expect(try proxy.get("/api/v1/echo").status == 200) }
    let port = proxy.sandbox.port
    // Closes every connection it has, the proxy's pooled one among them.
    proxy.sandbox.stop()
    let revived = try SandboxAPI.start(port: port, pkiDirectory: proxy.directory + "/pki")
    defer { revived.stop() }
    let (response, log, _) = try timedGet(proxy, "/api/v1/echo")
    #expect(response.status == 200)
    // One attempt on a new connection (401: the new sandbox does not know the token), one replay
    // after the new login; a dead pooled connection would have cost a third.
    #expect(log["attempts"] as? Int == 2)
    #expect(log["reauth"] as? Bool == true)
    #expect(revived.counters.logins == 1)
  }

  @Test func aConnectionResetMidResponseReachesTheAppAsACutConnectionNotAWholeResponse() throws {
    let proxy = try ProxyHarness(workers: 1, flags: Self.quick)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)

    // With a Content-Length: fewer bytes than announced, then the connection ends.
    let key = "cut-\(UUID().uuidString.prefix(8))"
    let sized = try sendAndReadUntilClosed(
      port: proxy.port,
      requestBytes(method: "GET", target: "/api/v1/truncate?key=\(key)&size=200000&send=30000", headers: [("X-Request-ID", key)]))
    #expect(sized.closedByPeer, "the proxy must close the app's connection, not leave it hanging")
    #expect(sized.status == 200, "the head went out before the cut: \(sized.head ?? "no head")")
    #expect(sized.header("Content-Length") == "200000")
    #expect(sized.body.count < 200_000, "the app must not get a whole body: \(sized.body.count) bytes")
    #expect(proxy.sandbox.hits(key) == 1, "a reply that was under way is never retried")
    let log = try #require(accessLine(proxy, key))
    #expect(log["upstream_status"] as? Int == 200)
    #expect(log["error"] as? String == "upstream_broken", "\(log)")

    // Chunked: no last chunk, then the connection ends.
    let chunkedKey = "cut-chunked-\(UUID().uuidString.prefix(8))"
    let chunked = try sendAndReadUntilClosed(
      port: proxy.port,
      requestBytes(
        method: "GET", target: "/api/v1/truncate?key=\(chunkedKey)&size=200000&send=30000&chunked=1",
        headers: [("X-Request-ID", chunkedKey)]))
    #expect(chunked.closedByPeer)
    #expect(chunked.status == 200, "\(chunked.head ?? "no head")")
    #expect(chunked.header("Transfer-Encoding")?.lowercased() == "chunked")
    #expect(chunked.body.count > 0 && chunked.body.count < 200_000, "\(chunked.body.count) body bytes")
    #expect(!chunked.body.suffix(5).elementsEqual(Array("0\r\n\r\n".utf8)), "the app must not see the last chunk of a cut body")
    let chunkedLog = try #require(accessLine(proxy, chunkedKey))
    #expect(chunkedLog["error"] as? String == "upstream_broken", "\(chunkedLog)")

    // The proxy is fine, and so is its connection pool.
    for _ in 0..<3 { #expect(try proxy.get("/api/v1/echo").status == 200) }
  }

  @Test func aTLSHandshakeFailureGives502NamingTLSUntilTheUpstreamSpeaksTLSAgain() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    let fault = try FaultServer(.garbage)
    defer { fault.stop() }
    let proxy = try ProxyHarness(
      workers: 1, flags: Self.quick.merging(["upstream": "https://localhost:\(fault.port)"]) { $1 }, sandbox: sandbox)
    defer { proxy.stop() }

    // The login itself fails: "upstream unreachable or TLS failure".
    for _ in 0..<2 {
      let (response, log, seconds) = try timedGet(proxy, "/api/v1/echo")
      expectProxyError(response, status: 502, code: "upstream_tls")
      #expect(response.errorMessage?.contains("TLS") == true, "\(response.errorMessage ?? "")")
      #expect(seconds < 3, "\(seconds)s")
      #expect(log["error"] as? String == "upstream_tls")
    }
    #expect(fault.acceptedCount >= 1)
    #expect(sandbox.counters.logins + sandbox.counters.failedLogins == 0)
    let ready = try proxy.admin("/readyz")
    #expect(ready.status == 503)
    #expect(ready.text.contains("TLS"), "\(ready.text)")
    #expect(try proxy.admin("/healthz").status == 200)
    #expect(proxy.logs.all.contains { $0.contains("login failed") && $0.contains("TLS") })

    // The upstream speaks TLS again: the login backoff gets there, and requests pass.
    fault.setMode(.relay(to: sandbox.port))
    #expect(eventually(timeout: 20) { (try? proxy.get("/api/v1/echo").status) == 200 })
    #expect(sandbox.counters.logins == 1)
  }

  @Test func aTLSHandshakeFailureAfterLoginGives502AndTheNextRequestAfterRecoverySucceeds() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    let fault = try FaultServer(.relay(to: sandbox.port))
    defer { fault.stop() }
    let proxy = try ProxyHarness(
      workers: 1, flags: Self.quick.merging(["upstream": "https://localhost:\(fault.port)"]) { $1 }, sandbox: sandbox)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)

    fault.setMode(.garbage)
    fault.dropConnections()
    let (response, log, seconds) = try timedGet(proxy, "/api/v1/echo")
    expectProxyError(response, status: 502, code: "upstream_tls")
    #expect(response.errorMessage?.contains("TLS") == true)
    #expect(seconds < 3, "\(seconds)s")
    #expect(log["error"] as? String == "upstream_tls")
    #expect(log["attempts"] as? Int == 2)
    #expect(try proxy.admin("/readyz").status == 200, "the token is still good")

    fault.setMode(.relay(to: sandbox.port))
    #expect(try proxy.get("/api/v1/echo").status == 200)
    #expect(sandbox.counters.logins == 1)
  }

  @Test func anUpstreamThatAcceptsButNeverAnswersGives504WithinTheTimeout() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    let fault = try FaultServer(.relay(to: sandbox.port))
    defer { fault.stop() }
    let proxy = try ProxyHarness(
      workers: 1, flags: ["upstream": "https://localhost:\(fault.port)", "timeout": "1s", "retries": "0"], sandbox: sandbox)
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo").status == 200)

    fault.setMode(.silent)
    fault.dropConnections()
    let (response, log, seconds) = try timedGet(proxy, "/api/v1/echo")
    expectProxyError(response, status: 504, code: "upstream_timeout")
    #expect(seconds >= 0.9 && seconds < 2.5, "answered after \(seconds)s with --timeout 1s")
    #expect(log["error"] as? String == "upstream_timeout")
    #expect(log["status"] as? Int == 504)
    #expect(try proxy.admin("/healthz").status == 200)

    fault.setMode(.relay(to: sandbox.port))
    #expect(try proxy.get("/api/v1/echo").status == 200)
  }

  @Test func anUpstreamThatNeverAnswersTheLoginGives504Too() throws {
    let fault = try FaultServer(.silent)
    defer { fault.stop() }
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    let proxy = try ProxyHarness(
      workers: 1, flags: ["upstream": "https://localhost:\(fault.port)", "timeout": "1s", "retries": "0"], sandbox: sandbox)
    defer { proxy.stop() }
    // A request that arrives while the login hangs waits --timeout for a token; its wait and
    // the login's own --timeout end together, so it gets either answer (see the report:
    // Worker.wait's 503 does not name the cause).
    let (first, firstLog, firstSeconds) = try timedGet(proxy, "/api/v1/echo")
    #expect([503, 504].contains(first.status) && ["no_token", "upstream_timeout"].contains(first.errorCode ?? ""), "\(first.text)")
    #expect(firstSeconds < 2.5, "answered after \(firstSeconds)s with --timeout 1s")
    #expect(firstLog["error"] as? String == first.errorCode)
    // Once the login has timed out, every request says so at once: 504, the cause named.
    #expect(eventually { (try? proxy.admin("/readyz").text.contains("did not answer in time")) == true })
    let (response, log, seconds) = try timedGet(proxy, "/api/v1/echo")
    expectProxyError(response, status: 504, code: "upstream_timeout")
    #expect(response.errorMessage?.contains("did not answer in time") == true)
    #expect(seconds < 1, "answered after \(seconds)s")
    #expect(log["error"] as? String == "upstream_timeout")
    #expect(try proxy.admin("/readyz").status == 503)
    #expect(try proxy.admin("/healthz").status == 200)
  }

  @Test func anUpstreamNameThatDoesNotResolveGives502NamingDNSQuickly() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    let proxy = try ProxyHarness(
      workers: 1, flags: Self.quick.merging(["upstream": "https://does-not-exist.invalid"]) { $1 }, sandbox: sandbox)
    defer { proxy.stop() }
    for _ in 0..<2 {
      let (response, log, seconds) = try timedGet(proxy, "/api/v1/echo")
      expectProxyError(response, status: 502, code: "upstream_dns")
      #expect(response.errorMessage?.contains("does not resolve") == true, "\(response.errorMessage ?? "")")
      #expect(seconds < 3, "\(seconds)s")
      #expect(log["error"] as? String == "upstream_dns")
    }
    let ready = try proxy.admin("/readyz")
    #expect(ready.status == 503)
    #expect(ready.text.contains("does not resolve"), "\(ready.text)")
    #expect(try proxy.admin("/healthz").status == 200)
  }
}

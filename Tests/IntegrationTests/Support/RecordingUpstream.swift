import COpenSSL
import Foundation

@testable import AuthProxy
import TestSupport

/// An upstream written for the framing tests: TLS on loopback (a throw-away CA), on plain
/// threads and blocking sockets. It answers logins itself, records every other request exactly
/// as it arrived (head and body bytes), and answers each with the next scripted answer, sent
/// as raw bytes: what a broken or unusual server would send. An answer may end its connection,
/// with or without a TLS close_notify.
final class RecordingUpstream: @unchecked Sendable {
  struct Answer: Sendable {
    var bytes: [UInt8]
    /// Close the connection after the answer (a close-delimited body ends there).
    var thenClose = false
    /// Close the TCP connection without a TLS close_notify, as many servers do.
    var withoutCloseNotify = false
  }

  var port: Int { listener.port }
  let caPath: String
  var baseURL: String { "https://localhost:\(port)" }

  private let listener: ThreadedListener
  private let tls: TLSServerContext
  private let lock = NSLock()
  private var answers: [Answer] = []
  private var recorded: [[UInt8]] = []

  init() throws {
    let directory = temporaryDirectory("recording-upstream")
    try ThrowawayPKI.make(in: directory, caName: "recording upstream CA")
    caPath = directory + "/ca.pem"
    tls = try TLSServerContext(certificatePath: directory + "/server.pem", keyPath: directory + "/server-key.pem")
    listener = try ThreadedListener()
    listener.start { [self] fd in { [self] in serve(fd) } }
  }

  deinit { stop() }

  /// Queues the answer to the next API request.
  func answer(_ raw: String, thenClose: Bool = false, withoutCloseNotify: Bool = false) {
    answer(Array(raw.utf8), thenClose: thenClose, withoutCloseNotify: withoutCloseNotify)
  }

  func answer(_ raw: [UInt8], thenClose: Bool = false, withoutCloseNotify: Bool = false) {
    lock.withLock { answers.append(Answer(bytes: raw, thenClose: thenClose, withoutCloseNotify: withoutCloseNotify)) }
  }

  /// Every API request received so far, as its bytes.
  var requests: [[UInt8]] { lock.withLock { recorded } }

  /// TCP connections accepted so far (the login's included).
  var connectionCount: Int { listener.acceptedCount }

  func stop() { listener.stop() }

  /// One connection: TLS, then request after request until an answer closes it or the peer leaves.
  private func serve(_ fd: Int32) {
    var timeout = timeval(tv_sec: 20, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    guard let ssl = SSL_new(tls.ctx) else { return finish(fd) }
    defer { SSL_free(ssl) }
    guard SSL_set_fd(ssl, fd) == 1, SSL_accept(ssl) == 1 else { return finish(fd) }
    var input: [UInt8] = []
    while true {
      guard let request = readRequest(ssl, &input) else { return finish(fd) }
      let target = requestTarget(request)
      let answer: Answer
      if target.hasPrefix("/auth/") {
        answer = Answer(bytes: Self.loginAnswer)
      } else {
        answer = lock.withLock { () -> Answer in
          recorded.append(request)
          return answers.isEmpty
            ? Answer(bytes: Array("HTTP/1.1 599 No Answer Scripted\r\nContent-Length: 0\r\n\r\n".utf8)) : answers.removeFirst()
        }
      }
      guard write(ssl, answer.bytes) else { return finish(fd) }
      if answer.thenClose {
        if !answer.withoutCloseNotify { SSL_shutdown(ssl) }
        return finish(fd)
      }
    }
  }

  private func finish(_ fd: Int32) { listener.close(fd) }

  private static let loginAnswer: [UInt8] = {
    let body =
      #"{"access_token":"recording-access","refresh_token":"recording-refresh","#
      + #""access_expires_at":"2099-01-01T00:00:00Z","refresh_expires_at":"2099-01-08T00:00:00Z","client_id":"1"}"#
    return Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
  }()

  /// One request (head, then a Content-Length body: the proxy and curl frame bodies so), or nil
  /// when the connection ended first.
  private func readRequest(_ ssl: OpaquePointer, _ input: inout [UInt8]) -> [UInt8]? {
    let separator: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A]
    var headEnd: Int?
    while true {
      if headEnd == nil, let range = input.firstRange(of: separator) { headEnd = range.upperBound }
      if let end = headEnd {
        let length = Self.contentLength(input[..<end]) ?? 0
        if input.count >= end + length {
          let request = Array(input[..<(end + length)])
          input.removeFirst(end + length)
          return request
        }
      }
      var chunk = [UInt8](repeating: 0, count: 16384)
      let n = chunk.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
      guard n > 0 else { return nil }
      input.append(contentsOf: chunk[0..<Int(n)])
    }
  }

  private static func contentLength(_ head: ArraySlice<UInt8>) -> Int? {
    let text = String(decoding: head, as: UTF8.self)
    for line in text.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
      return Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
    }
    return nil
  }

  private func requestTarget(_ request: [UInt8]) -> String {
    let line = request.prefix { $0 != 0x0D }
    let parts = line.split(separator: 0x20)
    return parts.count > 1 ? String(decoding: parts[1], as: UTF8.self) : ""
  }

  private func write(_ ssl: OpaquePointer, _ bytes: [UInt8]) -> Bool {
    guard !bytes.isEmpty else { return true }
    let n = bytes.withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
    return Int(n) == bytes.count
  }
}

import Foundation

/// A response as a test sees it on the wire.
struct HTTPResponse {
  var status: Int
  var headers: [(name: String, value: String)]
  var body: [UInt8]

  func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
  var text: String { String(decoding: body, as: UTF8.self) }
  var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] }
  /// `error.code` and `error.message` of a proxy-made error body.
  var errorCode: String? { (json?["error"] as? [String: Any])?["code"] as? String }
  var errorMessage: String? { (json?["error"] as? [String: Any])?["message"] as? String }
}

struct HTTPClientError: Error, CustomStringConvertible {
  let description: String
}

/// connect(2) of `fd` to an IPv4 `host`:`port`; connect's return value.
func connectIPv4(_ fd: Int32, host: String = "127.0.0.1", port: Int) -> Int32 {
  var addr = sockaddr_in()
  addr.sin_family = sa_family_t(AF_INET)
  addr.sin_port = in_port_t(UInt16(port).bigEndian)
  inet_pton(AF_INET, host, &addr.sin_addr)
  return withUnsafePointer(to: &addr) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
  }
}

/// A plain HTTP/1.1 client on a blocking socket: exactly the bytes a test writes go out.
final class RawConnection {
  private let fd: Int32
  private var buffered: [UInt8] = []

  init(port: Int, host: String = "127.0.0.1", timeoutSeconds: Int = 30) throws {
    fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let rc = connectIPv4(fd, host: host, port: port)
    guard rc == 0 else {
      // No close here: a class whose init throws after its properties are set still runs
      // deinit, which closes `fd`; closing it twice could close another test's descriptor.
      throw HTTPClientError(description: "connect to \(port) failed: errno \(errno)")
    }
  }

  /// A connection to a Unix-socket listener at `unixPath`.
  init(unixPath: String, timeoutSeconds: Int = 30) throws {
    fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      for (i, b) in unixPath.utf8.enumerated() { raw[i] = b }
    }
    let rc = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0 else {
      // No close here: a class whose init throws after its properties are set still runs
      // deinit, which closes `fd`; closing it twice could close another test's descriptor.
      throw HTTPClientError(description: "connect to \(unixPath) failed: errno \(errno)")
    }
  }

  deinit { close(fd) }

  /// Leaves: both directions shut (the peer reads EOF); the descriptor goes with the object.
  func shutdown() { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }

  func send(_ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
      let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      guard n > 0 else { throw HTTPClientError(description: "send failed: errno \(errno)") }
      offset += n
    }
  }

  func send(_ text: String) throws { try send(Array(text.utf8)) }

  /// Reads more bytes; returns false at EOF.
  private func fill() throws -> Bool {
    var chunk = [UInt8](repeating: 0, count: 65536)
    let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    if n == 0 { return false }
    guard n > 0 else { throw HTTPClientError(description: "recv failed or timed out: errno \(errno)") }
    buffered.append(contentsOf: chunk[0..<n])
    return true
  }

  private func readLine() throws -> String? {
    while true {
      if let lf = buffered.firstIndex(of: 0x0A) {
        var line = Array(buffered[..<lf])
        buffered.removeFirst(lf + 1)
        if line.last == 0x0D { line.removeLast() }
        return String(decoding: line, as: UTF8.self)
      }
      guard try fill() else { return nil }
    }
  }

  private func readExactly(_ count: Int, into sink: (ArraySlice<UInt8>) -> Void) throws {
    var remaining = count
    while remaining > 0 {
      if buffered.isEmpty { guard try fill() else { throw HTTPClientError(description: "EOF with \(remaining) body bytes missing") } }
      let take = min(remaining, buffered.count)
      sink(buffered[0..<take])
      buffered.removeFirst(take)
      remaining -= take
    }
  }

  /// Reads one response. `sink` gets the body in pieces (else it is collected in `body`).
  func readResponse(forHEAD: Bool = false, sink: ((ArraySlice<UInt8>) -> Void)? = nil) throws -> HTTPResponse {
    guard let statusLine = try readLine() else { throw HTTPClientError(description: "connection closed before a response") }
    let parts = statusLine.split(separator: " ", maxSplits: 2)
    guard parts.count >= 2, let status = Int(parts[1]) else { throw HTTPClientError(description: "bad status line \(statusLine)") }
    var headers: [(name: String, value: String)] = []
    while let line = try readLine(), !line.isEmpty {
      guard let colon = line.firstIndex(of: ":") else { continue }
      headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
    }
    var response = HTTPResponse(status: status, headers: headers, body: [])
    var body: [UInt8] = []
    let deliver: (ArraySlice<UInt8>) -> Void = sink ?? { body.append(contentsOf: $0) }
    if forHEAD || status == 204 || status == 304 || (100..<200).contains(status) {
      // no body
    } else if let length = response.header("Content-Length").flatMap(Int.init) {
      try readExactly(length, into: deliver)
    } else if response.header("Transfer-Encoding")?.lowercased() == "chunked" {
      while let sizeLine = try readLine() {
        let size = Int(sizeLine.split(separator: ";")[0], radix: 16) ?? 0
        if size == 0 {
          while let trailer = try readLine(), !trailer.isEmpty {}
          break
        }
        try readExactly(size, into: deliver)
        _ = try readLine()
      }
    } else {
      while try fill() {}
      deliver(buffered[...])
      buffered.removeAll()
    }
    response.body = body
    return response
  }

  /// The next line with its ending (LF or CRLF), as bytes; nil at EOF.
  private func readRawLine() throws -> [UInt8]? {
    while true {
      if let lf = buffered.firstIndex(of: 0x0A) {
        let line = Array(buffered[...lf])
        buffered.removeFirst(lf + 1)
        return line
      }
      guard try fill() else { return nil }
    }
  }

  /// Reads one response exactly as it is on the wire: the head's lines (without their CRLF),
  /// and the body's bytes with their framing (chunk-size lines, the last chunk and trailers).
  func readWireResponse(forHEAD: Bool = false) throws -> (lines: [String], body: [UInt8]) {
    var lines: [String] = []
    while let line = try readLine(), !line.isEmpty { lines.append(line) }
    guard let statusLine = lines.first else { throw HTTPClientError(description: "connection closed before a response") }
    let parts = statusLine.split(separator: " ", maxSplits: 2)
    guard parts.count >= 2, let status = Int(parts[1]) else { throw HTTPClientError(description: "bad status line \(statusLine)") }
    func header(_ name: String) -> String? {
      lines.dropFirst().first { $0.lowercased().hasPrefix(name.lowercased() + ":") }.map {
        String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces)
      }
    }
    var body: [UInt8] = []
    if forHEAD || status == 204 || status == 304 || (100..<200).contains(status) {
      // no body
    } else if let length = header("Content-Length").flatMap(Int.init) {
      try readExactly(length) { body.append(contentsOf: $0) }
    } else if header("Transfer-Encoding")?.lowercased() == "chunked" {
      while let sizeLine = try readRawLine() {
        body += sizeLine
        let text = String(decoding: sizeLine, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let size = Int(text.split(separator: ";").first.map(String.init) ?? "", radix: 16) else {
          throw HTTPClientError(description: "bad chunk size line \(text.debugDescription)")
        }
        if size == 0 {
          while let trailer = try readRawLine() {
            body += trailer
            if trailer == [0x0D, 0x0A] || trailer == [0x0A] { break }
          }
          break
        }
        try readExactly(size + 2) { body.append(contentsOf: $0) }
      }
    } else {
      while try fill() {}
      body += buffered
      buffered.removeAll()
    }
    return (lines, body)
  }

  /// Reads until the peer closes the connection (EOF or reset) or the read times out; says which.
  func readUntilClosed() -> (bytes: [UInt8], closedByPeer: Bool) {
    var received = buffered
    buffered.removeAll()
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
      let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      if n > 0 {
        received.append(contentsOf: chunk[0..<n])
      } else if n == 0 || errno == ECONNRESET {
        return (received, true)
      } else if errno != EINTR {
        return (received, false)
      }
    }
  }

  /// True once the peer closed the connection (EOF) with nothing more to read.
  func isClosedByPeer() throws -> Bool {
    if !buffered.isEmpty { return false }
    return try !fill()
  }
}

/// One request on a fresh connection.
func request(
  port: Int, method: String = "GET", target: String, headers: [(String, String)] = [], body: [UInt8] = []
) throws -> HTTPResponse {
  let connection = try RawConnection(port: port)
  try connection.send(requestBytes(method: method, target: target, headers: headers, body: body))
  return try connection.readResponse(forHEAD: method == "HEAD")
}

func requestBytes(method: String, target: String, headers: [(String, String)] = [], body: [UInt8] = []) -> [UInt8] {
  var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
  for (name, value) in headers { head += "\(name): \(value)\r\n" }
  if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method) { head += "Content-Length: \(body.count)\r\n" }
  head += "\r\n"
  return Array(head.utf8) + body
}

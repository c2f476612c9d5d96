import Foundation
import TestSupport
import SandboxAPI

// The sandbox API over real TLS, with /usr/bin/curl as the client: for the tests that talk to
// the sandbox directly (SandboxAPITests, SandboxContractTests).

/// What curl saw: its exit code, and the last response (after any 1xx).
struct CurlReply {
  var exitCode: Int32
  var status: Int
  var headers: [(name: String, value: String)]
  var body: Data
  var stderr: String

  func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
  var text: String { String(decoding: body, as: UTF8.self) }
  var object: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }
  var array: [[String: Any]]? { (try? JSONSerialization.jsonObject(with: body)) as? [[String: Any]] }
  /// `data` of an enveloped answer.
  var data: [String: Any]? { object?["data"] as? [String: Any] }
  /// `error.code` of a nested error answer.
  var errorCode: String? { (object?["error"] as? [String: Any])?["code"] as? String }
}

struct CurlFailure: Error, CustomStringConvertible {
  let description: String
}

/// Runs curl with `arguments` (after `-s -S -i`), and splits its output into head and body.
func runCurl(_ arguments: [String]) throws -> CurlReply {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
  process.arguments = ["-s", "-S", "-i", "-H", "Expect:", "--max-time", "60"] + arguments
  let output = Pipe()
  let errors = Pipe()
  process.standardOutput = output
  process.standardError = errors
  try process.run()
  let data = output.fileHandleForReading.readDataToEndOfFile()
  let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
  process.waitUntilExit()
  var reply = CurlReply(exitCode: process.terminationStatus, status: 0, headers: [], body: Data(), stderr: stderr)
  var rest = data[...]
  let separator = Data("\r\n\r\n".utf8)
  while let end = rest.range(of: separator), rest.starts(with: Data("HTTP/".utf8)) {
    let lines = String(decoding: rest[rest.startIndex..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
    let statusWords = lines[0].split(separator: " ")
    guard statusWords.count >= 2, let status = Int(statusWords[1]) else {
      throw CurlFailure(description: "bad status line: \(lines[0])")
    }
    reply.status = status
    reply.headers = lines.dropFirst().compactMap { line in
      guard let colon = line.firstIndex(of: ":") else { return nil }
      return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
    }
    rest = rest[end.upperBound...]
    if !(100..<200).contains(status) { break }
  }
  reply.body = Data(rest)
  return reply
}

/// A JSON value as an RFC 3339 UTC timestamp ("2026-11-29T10:00:00Z").
func rfc3339(_ value: Any?) -> Date? {
  guard let text = value as? String, text.hasSuffix("Z") else { return nil }
  return ISO8601DateFormatter().date(from: text)
}

/// One sandbox on a free port, with its PKI in a fresh temporary directory.
final class SandboxFixture {
  let directory: String
  let api: SandboxAPI

  init() throws {
    directory = temporaryDirectory("sandbox-api-test")
    api = try SandboxAPI.start(pkiDirectory: directory + "/pki")
  }

  func close() {
    api.stop()
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// A request through curl, trusting the sandbox's CA.
  func curl(_ method: String, _ target: String, json: String? = nil, token: String? = nil, extra: [String] = []) throws -> CurlReply {
    var arguments = ["--cacert", api.caPath, "-X", method]
    if let json { arguments += ["-H", "Content-Type: application/json", "--data-binary", json] }
    if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
    return try runCurl(arguments + extra + [api.baseURL + target])
  }

  func login(_ user: SandboxUser) throws -> (access: String, refresh: String) {
    let reply = try curl("POST", "/auth/login", json: #"{"username":"\#(user.username)","password":"\#(user.password)"}"#)
    guard reply.status == 200, let access = reply.data?["access_token"] as? String, let refresh = reply.data?["refresh_token"] as? String
    else { throw CurlFailure(description: "login of \(user.username) failed: \(reply.status) \(reply.text) \(reply.stderr)") }
    return (access, refresh)
  }

  func refresh(_ token: String) throws -> CurlReply { try curl("POST", "/auth/refresh", json: #"{"refresh_token":"\#(token)"}"#) }
  func echo(_ token: String?) throws -> CurlReply { try curl("GET", "/api/v1/echo", token: token) }
}

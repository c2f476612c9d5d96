import Foundation

/// A real `redis-server` on a free loopback port, started by the test and killed at the end.
final class RedisServer {
  let port: Int
  private var process: Process?
  private let directory = temporaryDirectory("redis")

  init(port: Int = freePort()) throws {
    self.port = port
    try start()
  }

  static var binary: String? {
    ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first { FileManager.default.isExecutableFile(atPath: $0) }
  }

  func start() throws {
    guard let binary = RedisServer.binary else {
      throw HTTPClientError(description: "redis-server is not installed: run ./scripts/install-deps")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = [
      "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory,
      "--protected-mode", "no",
    ]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    self.process = process
    guard eventually(timeout: 10, { (try? cli(["PING"])) == "PONG" }) else {
      throw HTTPClientError(description: "redis-server did not come up on \(port)")
    }
  }

  /// Kills the server (SIGKILL: as a crash would).
  func kill() {
    guard let process else { return }
    Foundation.kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
    self.process = nil
  }

  deinit { kill() }

  /// Runs redis-cli against this server and returns its trimmed output.
  func cli(_ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
    process.arguments = ["-p", String(port)] + arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
  }

  var url: String { "redis://127.0.0.1:\(port)" }
}

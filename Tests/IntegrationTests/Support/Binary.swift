import Foundation

/// The built `authproxy` executable, next to the test bundle in the build directory.
var authproxyBinary: String {
  var url = Bundle.main.bundleURL
  // .build/<triple>/debug/authproxyPackageTests.xctest → .build/<triple>/debug/authproxy
  if url.pathExtension == "xctest" { url = url.deletingLastPathComponent() }
  let candidate = url.appendingPathComponent("authproxy").path
  if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
  let fromExe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("authproxy").path
  return fromExe
}

/// A finished run of the binary.
struct BinaryRun {
  var status: Int32
  var stdout: String
  var stderr: String
}

/// Runs `authproxy` with `arguments` and `environment` (nothing inherited), waits up to `timeout`.
func runBinary(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 20, stdin: String? = nil) throws -> BinaryRun {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: authproxyBinary)
  process.arguments = arguments
  process.environment = environment.merging(["PATH": "/usr/bin:/bin"]) { given, _ in given }
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = err
  let input = Pipe()
  process.standardInput = input
  try process.run()
  if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
  try? input.fileHandleForWriting.close()
  let deadline = Date().addingTimeInterval(timeout)
  while process.isRunning && Date() < deadline { usleep(20_000) }
  if process.isRunning { process.terminate() }
  process.waitUntilExit()
  return BinaryRun(
    status: process.terminationStatus,
    stdout: String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
    stderr: String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
}

/// A long-running `authproxy` child process (for tests that measure the process itself).
final class ProxyProcess {
  let process = Process()
  let stdout = Pipe()
  let stderr = Pipe()

  /// `executable`: another program that runs authproxy (e.g. prlimit); by default, authproxy.
  init(_ arguments: [String], environment: [String: String], executable: String = authproxyBinary) throws {
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = environment.merging(["PATH": "/usr/bin:/bin"]) { given, _ in given }
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
  }

  var pid: Int32 { process.processIdentifier }

  /// A value from /proc/PID/status, in KiB (VmRSS, VmHWM).
  func memoryKiB(_ field: String) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
      return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
  }

  /// SIGTERM, then the exit status.
  func stop(timeout: Double = 20) -> Int32 {
    process.terminate()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(20_000) }
    if process.isRunning { kill(pid, SIGKILL) }
    process.waitUntilExit()
    return process.terminationStatus
  }

  /// What the process wrote to stderr (call after stop).
  var errorOutput: String { String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
}

/// A free TCP port on loopback (bound and released; fine for a child that binds it right away).
/// Stops the test run with the reason rather than return port 0 when none can be had (the
/// machine's ephemeral ports used up by another load on it).
func freePort() -> Int {
  for _ in 0..<50 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
    let bound = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    let port = Int(UInt16(bigEndian: addr.sin_port))
    if fd >= 0 && bound == 0 && named == 0 && port != 0 { return port }
    usleep(100_000)
  }
  fatalError("no free loopback port: \(String(cString: strerror(errno)))")
}

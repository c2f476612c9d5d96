import AuthProxy
import Foundation
import SandboxAPI
import TestSupport

/// A fresh temporary directory for one test.
/// The sandbox API and a proxy in front of it, both in this process on ephemeral ports.
final class ProxyHarness {
  let directory: String
  let sandbox: SandboxAPI
  let runtime: ProxyRuntime
  let logs = LogCapture()
  let accessLogPath: String
  var port: Int { runtime.proxyPort }
  var adminPort: Int { runtime.adminPort }
  private var stopped = false
  private let ownsSandbox: Bool

  /// `flags` are serve flags on top of the harness's own (upstream, CA, ports, access log).
  /// `monotonic` is what the data path's timeout decisions read: a `ManualMonotonicClock`
  /// lets a test move time past a timeout instead of waiting for it (the 1 s sweep timer
  /// still runs in real time and then decides by this clock).
  init(
    workers: Int = 2, flags: [String: String] = [:], accessLifetime: Double = 3600, refreshLifetime: Double = 7 * 86400,
    user: SandboxUser = SandboxAPI.demoUsers[0], trustSandboxCA: Bool = true, sandbox existing: SandboxAPI? = nil,
    loader: CredentialLoader? = nil, environment: [String: String] = [:],
    monotonic: any MonotonicClock = SystemMonotonicClock()
  ) throws {
    ownsSandbox = existing == nil
    directory = temporaryDirectory()
    sandbox = try existing ?? SandboxAPI.start(pkiDirectory: directory + "/pki")
    // A sandbox handed in keeps the lifetimes its test gave it.
    if existing == nil { sandbox.setLifetimes(access: accessLifetime, refresh: refreshLifetime) }
    accessLogPath = directory + "/access.log"
    var caPath = sandbox.caPath
    if !trustSandboxCA {
      let other = directory + "/other-ca"
      try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
      try ThrowawayPKI.make(in: other, caName: "some other CA")
      caPath = other + "/ca.pem"
    }
    var all: [String: String] = [
      "upstream": sandbox.baseURL, "ca-file": caPath, "listen": "127.0.0.1:0", "admin-listen": "127.0.0.1:0",
      "access-log": accessLogPath, "workers": String(workers),
    ]
    all.merge(flags) { _, given in given }
    let config = try ServeConfig.load(flags: all, environment: environment).get()
    runtime = try ProxyRuntime(
      config: config, credentials: try loader?.load() ?? Credentials(username: user.username, password: Secret(user.password)),
      loader: loader, logger: logs.logger, monotonic: monotonic)
  }

  func stop() {
    guard !stopped else { return }
    stopped = true
    runtime.shutdown()
    runtime.wait()
    // A sandbox shared by several proxies is stopped by its owner.
    if ownsSandbox { sandbox.stop() }
  }

  deinit { stop() }

  func get(_ target: String, headers: [(String, String)] = []) throws -> HTTPResponse {
    try request(port: port, target: target, headers: headers)
  }

  func admin(_ path: String) throws -> HTTPResponse { try request(port: adminPort, target: path) }

  /// A sample without labels from `/metrics`, or nil.
  func metric(_ name: String) -> Double? {
    let text = (try? admin("/metrics").text) ?? ""
    return text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
  }

  /// Access-log lines written so far (the workers flush at least every second).
  func accessLog() -> [[String: Any]] {
    let text = (try? String(contentsOfFile: accessLogPath, encoding: .utf8)) ?? ""
    return text.split(separator: "\n").compactMap { line in
      (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
    }
  }

  /// Waits until the access log holds `count` lines.
  func accessLog(count: Int) -> [[String: Any]] {
    _ = eventually { accessLog().count >= count }
    return accessLog()
  }
}

/// The access-log line of the request with this X-Request-ID, once the worker flushed it.
func accessLine(_ proxy: ProxyHarness, _ requestID: String) -> [String: Any]? {
  var found: [String: Any]?
  _ = eventually { () -> Bool in
    found = proxy.accessLog().first { $0["request_id"] as? String == requestID }
    return found != nil
  }
  return found
}

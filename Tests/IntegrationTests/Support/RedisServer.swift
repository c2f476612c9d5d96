import AuthProxy
import Foundation
import TestSupport

/// A real `redis-server` (or `redis-sentinel`) on a free loopback port, started by the test and
/// killed at the end. Optionally TLS-only with a throw-away CA, with a password or an ACL user,
/// or a replica of another server.
final class RedisServer {
  struct Options {
    /// TLS only (no plain port), with a certificate from a throw-away CA for localhost/127.0.0.1.
    var tls = false
    /// With `tls`: clients must show a certificate from the same CA.
    var requireClientCertificate = false
    /// `requirepass` for the default user.
    var password: String?
    /// An ACL user (name, password) with every right; the default user is then switched off.
    var aclUser: (String, String)?
    /// A replica of the server on this port.
    var replicaOf: Int?
    /// Run as a Sentinel watching the master on this port under `SentinelSet.masterName`.
    var sentinelFor: Int?
    /// With `tls`: the certificates of this directory (a CA shared by several servers)
    /// instead of a throw-away CA of its own.
    var pki: String?
  }

  let port: Int
  let options: Options
  private var process: Process?
  let directory = temporaryDirectory("redis")
  var pid: Int32? { process?.processIdentifier }

  init(port: Int = freePort(), _ options: Options = Options()) throws {
    self.port = port
    self.options = options
    if options.tls && options.pki == nil {
      try ThrowawayPKI.make(in: directory, caName: "throw-away Redis CA")
    }
    try start()
  }

  static var binary: String? {
    ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first { FileManager.default.isExecutableFile(atPath: $0) }
  }

  var caPath: String { (options.pki ?? directory) + "/ca.pem" }
  var certificatePath: String { (options.pki ?? directory) + "/server.pem" }
  var keyPath: String { (options.pki ?? directory) + "/server-key.pem" }

  private var arguments: [String] {
    var arguments: [String] = []
    if let master = options.sentinelFor {
      // A Sentinel rewrites its configuration file: it must be one of its own.
      let config = directory + "/sentinel.conf"
      let listen =
        options.tls
        ? """
        port 0
        tls-port \(port)
        tls-cert-file \(certificatePath)
        tls-key-file \(keyPath)
        tls-ca-cert-file \(caPath)
        tls-auth-clients no
        tls-replication yes
        """ : "port \(port)"
      let text = """
        \(listen)
        bind 127.0.0.1
        protected-mode no
        dir \(directory)
        sentinel monitor \(SentinelSet.masterName) 127.0.0.1 \(master) 2
        sentinel down-after-milliseconds \(SentinelSet.masterName) 1000
        sentinel failover-timeout \(SentinelSet.masterName) 5000
        sentinel parallel-syncs \(SentinelSet.masterName) 1

        """
      if !FileManager.default.fileExists(atPath: config) {
        _ = FileManager.default.createFile(atPath: config, contents: Data(text.utf8))
      }
      return [config, "--sentinel"]
    }
    if options.tls {
      arguments += [
        "--port", "0", "--tls-port", String(port), "--tls-cert-file", certificatePath, "--tls-key-file", keyPath,
        "--tls-ca-cert-file", caPath, "--tls-auth-clients", options.requireClientCertificate ? "yes" : "no",
        "--tls-replication", "yes",
      ]
    } else {
      arguments += ["--port", String(port)]
    }
    arguments += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory, "--protected-mode", "no"]
    if let password = options.password { arguments += ["--requirepass", password] }
    if let (user, password) = options.aclUser {
      arguments += ["--user", user, "on", ">\(password)", "~*", "&*", "+@all", "--user", "default", "off"]
    }
    if let master = options.replicaOf { arguments += ["--replicaof", "127.0.0.1", String(master)] }
    return arguments
  }

  func start() throws {
    guard let binary = RedisServer.binary else {
      throw HTTPClientError(description: "redis-server is not installed: run ./scripts/install-deps")
    }
    let process = Process()
    // Debian's redis-sentinel package is the same server started in Sentinel mode.
    let sentinel = "/usr/bin/redis-sentinel"
    let useSentinel = options.sentinelFor != nil && FileManager.default.isExecutableFile(atPath: sentinel)
    process.executableURL = URL(fileURLWithPath: useSentinel ? sentinel : binary)
    process.arguments = arguments
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
    Foundation.kill(process.processIdentifier, SIGCONT)
    Foundation.kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
    self.process = nil
  }

  /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
  func freeze() { if let pid { Foundation.kill(pid, SIGSTOP) } }
  func thaw() { if let pid { Foundation.kill(pid, SIGCONT) } }

  deinit { kill() }

  /// Runs redis-cli against this server (with its TLS and credentials) and returns its trimmed output.
  func cli(_ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
    var connection = ["-p", String(port)]
    if options.tls {
      connection += ["--tls", "--cacert", caPath]
      if options.requireClientCertificate { connection += ["--cert", certificatePath, "--key", keyPath] }
    }
    if let (user, password) = options.aclUser {
      connection += ["--user", user, "--pass", password, "--no-auth-warning"]
    } else if let password = options.password {
      connection += ["-a", password, "--no-auth-warning"]
    }
    process.arguments = connection + arguments
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

/// A master, one replica and three Sentinels watching them, all on loopback.
final class SentinelSet {
  static let masterName = "authproxy-test"
  let master: RedisServer
  let replica: RedisServer
  let sentinels: [RedisServer]

  let tls: Bool

  /// `tls`: every server speaks TLS only, with one throw-away CA (replication and the
  /// Sentinels' own connections too).
  init(tls: Bool = false) throws {
    self.tls = tls
    var options = RedisServer.Options(tls: tls)
    if tls {
      let pki = temporaryDirectory("redis-pki")
      try ThrowawayPKI.make(in: pki, caName: "throw-away Redis CA")
      options.pki = pki
    }
    let master = try RedisServer(options)
    self.master = master
    var replicaOptions = options
    replicaOptions.replicaOf = master.port
    replica = try RedisServer(replicaOptions)
    var sentinelOptions = options
    sentinelOptions.sentinelFor = master.port
    sentinels = try (0..<3).map { _ in try RedisServer(sentinelOptions) }
  }

  var url: String {
    (tls ? "rediss-sentinel://" : "redis-sentinel://") + sentinels.map { "127.0.0.1:\($0.port)" }.joined(separator: ",")
      + "/\(SentinelSet.masterName)"
  }

  /// The port the first Sentinel names as the master now.
  func masterPort() -> Int? {
    let answer = (try? sentinels[0].cli(["SENTINEL", "get-master-addr-by-name", SentinelSet.masterName])) ?? ""
    return answer.split(separator: "\n").last.flatMap { Int($0) }
  }

  /// Each Sentinel knows the replica and the two other Sentinels: a failover can happen.
  func isReadyForFailover() -> Bool {
    sentinels.allSatisfy { sentinel in
      let replicas = (try? sentinel.cli(["SENTINEL", "replicas", SentinelSet.masterName])) ?? ""
      let peers = (try? sentinel.cli(["SENTINEL", "sentinels", SentinelSet.masterName])) ?? ""
      let lines = replicas.split(separator: "\n")
      let knowsReplica = lines.contains { $0 == String(replica.port) } && !replicas.contains("s_down")
      return knowsReplica && peers.split(separator: "\n").filter { $0 == "name" }.count >= 2
    }
  }
}

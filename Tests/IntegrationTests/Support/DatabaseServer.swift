import AuthProxy
import Foundation
import TestSupport

/// Runs a server binary or a tool of Debian's `postgresql` / `mariadb-server` packages. As root
/// (CI containers) as the packages' own unprivileged user, since initdb and postgres refuse
/// root; as anyone else, as that user.
@discardableResult
func runTool(
  _ path: String, _ arguments: [String], asUser user: String, environment: [String: String] = [:], stdin: String? = nil,
  check: Bool = true
) throws -> String {
  let process = Process()
  if getuid() == 0 {
    process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
    process.arguments = ["-u", user, "--", path] + arguments
  } else {
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
  }
  process.environment = ["PATH": "/usr/bin:/bin:/usr/sbin", "LANG": "C.UTF-8", "HOME": "/nonexistent"].merging(environment) { _, given in
    given
  }
  // Output goes to files, not pipes: a server started by the tool (pg_ctl start) inherits the
  // tool's descriptors and would hold a pipe open, so that reading it to the end never returns.
  let base = NSTemporaryDirectory() + "tool-\(UUID().uuidString.prefix(8))"
  _ = FileManager.default.createFile(atPath: base + ".out", contents: nil)
  _ = FileManager.default.createFile(atPath: base + ".err", contents: nil)
  defer {
    try? FileManager.default.removeItem(atPath: base + ".out")
    try? FileManager.default.removeItem(atPath: base + ".err")
  }
  let out = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".out"))
  let err = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".err"))
  let input = Pipe()
  process.standardOutput = out
  process.standardError = err
  process.standardInput = stdin == nil ? FileHandle.nullDevice : input
  try process.run()
  try? out.close()
  try? err.close()
  if let stdin {
    input.fileHandleForWriting.write(Data(stdin.utf8))
    try? input.fileHandleForWriting.close()
  }
  process.waitUntilExit()
  let output = FileManager.default.contents(atPath: base + ".out") ?? Data()
  let errorData = FileManager.default.contents(atPath: base + ".err") ?? Data()
  let text = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
  if check && process.terminationStatus != 0 {
    throw HTTPClientError(
      description:
        "\((path as NSString).lastPathComponent) \(arguments.first ?? "") failed (\(process.terminationStatus)): \(String(decoding: errorData, as: UTF8.self))"
    )
  }
  return text
}

/// Starts a server binary as a child of this process (as `user` when root: setpriv execs it, so
/// the child is the server itself and signals reach it), its output appended to `log`. Not
/// through pg_ctl or mysqld_safe: a daemon would inherit the descriptor Foundation watches to
/// learn that its child ended, and `waitUntilExit` would never return.
func spawnServer(_ path: String, _ arguments: [String], asUser user: String, log: String) throws -> Process {
  let process = Process()
  if getuid() == 0 {
    process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
    process.arguments = ["--reuid=\(user)", "--regid=\(user)", "--init-groups", "--", path] + arguments
  } else {
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
  }
  process.environment = ["PATH": "/usr/bin:/bin:/usr/sbin", "LANG": "C.UTF-8"]
  if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
  let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
  handle.seekToEndOfFile()
  process.standardOutput = handle
  process.standardError = handle
  process.standardInput = FileHandle.nullDevice
  try process.run()
  try? handle.close()
  return process
}

/// Makes `path` owned by `user` (as root), so that the server running as that user can use it.
func hand(_ path: String, to user: String) throws {
  guard getuid() == 0 else { return }
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/bin/chown")
  process.arguments = ["-R", "\(user):", path]
  try process.run()
  process.waitUntilExit()
}

/// Servers shared by a suite live as long as the test process: a watcher stops the server and
/// removes its folder once this process is gone, however it ended.
func stopWhenTestsExit(_ stopCommand: String, asUser user: String, directory: String) {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: "/bin/sh")
  let stop = getuid() == 0 ? "/usr/sbin/runuser -u \(user) -- \(stopCommand)" : stopCommand
  process.arguments = ["-c", "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; \(stop) >/dev/null 2>&1; rm -rf '\(directory)'"]
  process.standardOutput = FileHandle.nullDevice
  process.standardError = FileHandle.nullDevice
  try? process.run()
}

/// A real PostgreSQL (Debian's `postgresql`: initdb, pg_ctl) in a temporary folder, on a free
/// loopback port, with TLS from a throw-away CA (unless `tls` is false, to play a server that
/// offers none). Only `hostssl` lines in pg_hba.conf when TLS is on: a plain connection would be
/// refused, so a successful read proves TLS. The database `app` holds the security guide's
/// table; the role `authproxy` (password `appPassword`) may only SELECT from it.
final class PostgresServer: @unchecked Sendable {
  // @unchecked: `process` is replaced by start() and stop() only, which the tests call from
  // one thread at a time for a given server (a shared server is never stopped).
  static let binaries = "/usr/lib/postgresql/15/bin"
  static let user = getuid() == 0 ? "postgres" : NSUserName()
  let port: Int
  let directory: String
  let appPassword = "pg-app-\(UUID().uuidString.prefix(12))"
  var caPath: String { directory + "/pki/ca.pem" }
  private var data: String { directory + "/data" }
  private var socketDirectory: String { directory + "/sock" }
  private var process: Process?

  /// Why the tests cannot run here, or nil.
  static var unavailable: String? {
    FileManager.default.isExecutableFile(atPath: binaries + "/initdb")
      ? nil : "PostgreSQL is not installed (\(binaries)/initdb): run ./scripts/install-deps"
  }

  init(tls: Bool = true) throws {
    port = freePort()
    directory = temporaryDirectory("pg")
    let files = FileManager.default
    try files.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory)
    for folder in [data, socketDirectory, directory + "/pki"] {
      try files.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }
    try ThrowawayPKI.make(in: directory + "/pki", caName: "authproxy test database CA")
    try files.setAttributes([.posixPermissions: 0o600], ofItemAtPath: directory + "/pki/server-key.pem")
    try files.setAttributes([.posixPermissions: 0o700], ofItemAtPath: data)
    try hand(directory, to: Self.user)
    let adminPassword = directory + "/admin-password"
    try "admin-\(UUID().uuidString)".write(toFile: adminPassword, atomically: true, encoding: .utf8)
    try hand(adminPassword, to: Self.user)
    try runTool(
      Self.binaries + "/initdb",
      ["-D", data, "-U", "admin", "--pwfile", adminPassword, "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"],
      asUser: Self.user)
    let conf = """

      port = \(port)
      listen_addresses = '127.0.0.1'
      unix_socket_directories = '\(socketDirectory)'
      fsync = off
      ssl = \(tls ? "on" : "off")
      ssl_cert_file = '\(directory)/pki/server.pem'
      ssl_key_file = '\(directory)/pki/server-key.pem'

      """
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: data + "/postgresql.conf"))
    handle.seekToEndOfFile()
    handle.write(Data(conf.utf8))
    try handle.close()
    let hba = """
      local all all trust
      \(tls ? "hostssl" : "host") all all 127.0.0.1/32 scram-sha-256

      """
    try hba.write(toFile: data + "/pg_hba.conf", atomically: false, encoding: .utf8)
    try start()
    stopWhenTestsExit(
      "\(Self.binaries)/pg_ctl -D \(data) -m immediate -w stop", asUser: Self.user, directory: directory)
    try admin("CREATE DATABASE app", database: "postgres")
    try admin(
      """
      CREATE ROLE authproxy LOGIN PASSWORD '\(appPassword)';
      CREATE TABLE api_credentials (id integer PRIMARY KEY, encrypted_credentials text NOT NULL, active boolean NOT NULL DEFAULT true);
      GRANT SELECT ON api_credentials TO authproxy;
      """)
  }

  func start() throws {
    process = try spawnServer(Self.binaries + "/postgres", ["-D", data], asUser: Self.user, log: directory + "/server.log")
    let ready = eventually(timeout: 60) {
      (try? runTool(Self.binaries + "/pg_isready", ["-h", socketDirectory, "-p", String(port), "-q"], asUser: Self.user)) != nil
    }
    guard ready else { throw HTTPClientError(description: "postgres did not come up on \(port); see \(directory)/server.log") }
  }

  /// Stops the server at once (SIGQUIT, immediate shutdown: as a crash would, no goodbye to
  /// clients) and waits until it is gone.
  func stop() {
    guard let process else { return }
    kill(process.processIdentifier, SIGQUIT)
    process.waitUntilExit()
    self.process = nil
  }

  deinit {
    stop()
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// Runs SQL as the superuser over the Unix socket; returns psql's unaligned output.
  @discardableResult
  func admin(_ sql: String, database: String = "app") throws -> String {
    try runTool(
      Self.binaries + "/psql",
      ["-h", socketDirectory, "-p", String(port), "-U", "admin", "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-f", "-"],
      asUser: Self.user, stdin: sql)
  }

  /// Stores `sealed` as row `id` (replacing it), active or not.
  func put(id: Int, sealed: String, active: Bool = true) throws {
    try admin(
      "INSERT INTO api_credentials VALUES (\(id), '\(sealed)', \(active)) ON CONFLICT (id) DO UPDATE SET encrypted_credentials = EXCLUDED.encrypted_credentials, active = EXCLUDED.active"
    )
  }

  /// A URL for the application role, without its password (given apart, as in production).
  func url(host: String = "127.0.0.1", user: String = "authproxy", query: String = "") -> String {
    "postgres://\(user)@\(host):\(port)/app\(query.isEmpty ? "" : "?" + query)"
  }
}

/// A row id no other test uses (the servers are shared by tests that run in parallel).
func uniqueRowID() -> Int { Int.random(in: 1..<2_000_000_000) }

/// A real MariaDB (Debian's `mariadb-server`: mariadb-install-db, mariadbd) in a temporary
/// folder, on a free loopback port, with TLS from a throw-away CA and
/// `require_secure_transport` (unless `tls` is false, to play a server that offers none). The
/// database `app` holds the security guide's table; the user `authproxy` may only SELECT from it.
final class MariaDBServer: @unchecked Sendable {
  // @unchecked: `process` is replaced by start() and stop() only, which the tests call from one
  // thread at a time for a given server (a shared server is never stopped).
  static let user = getuid() == 0 ? "mysql" : NSUserName()
  let port: Int
  let directory: String
  let tls: Bool
  let appPassword = "my-app-\(UUID().uuidString.prefix(12))"
  var caPath: String { directory + "/pki/ca.pem" }
  private var data: String { directory + "/data" }
  private var socket: String { directory + "/sock/mysqld.sock" }
  private var process: Process?

  static var unavailable: String? {
    FileManager.default.isExecutableFile(atPath: "/usr/sbin/mariadbd")
      ? nil : "MariaDB is not installed (/usr/sbin/mariadbd): run ./scripts/install-deps"
  }

  init(tls: Bool = true) throws {
    port = freePort()
    self.tls = tls
    directory = temporaryDirectory("mariadb")
    let files = FileManager.default
    try files.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory)
    for folder in [data, directory + "/sock", directory + "/pki"] {
      try files.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }
    try ThrowawayPKI.make(in: directory + "/pki", caName: "authproxy test database CA")
    try hand(directory, to: Self.user)
    try runTool(
      "/usr/bin/mariadb-install-db",
      ["--no-defaults", "--datadir=\(data)", "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"],
      asUser: Self.user)
    try start()
    stopWhenTestsExit("/bin/kill $(cat \(directory)/mariadbd.pid)", asUser: Self.user, directory: directory)
    try admin(
      """
      CREATE DATABASE app;
      CREATE TABLE app.api_credentials (id INT PRIMARY KEY, encrypted_credentials TEXT NOT NULL, active TINYINT(1) NOT NULL DEFAULT 1);
      CREATE USER 'authproxy'@'%' IDENTIFIED BY '\(appPassword)';
      GRANT SELECT ON app.api_credentials TO 'authproxy'@'%';
      """)
  }

  func start() throws {
    var arguments = [
      "--no-defaults", "--datadir=\(data)", "--port=\(port)", "--bind-address=127.0.0.1", "--socket=\(socket)",
      "--pid-file=\(directory)/mariadbd.pid", "--log-error=\(directory)/server.log", "--skip-name-resolve", "--skip-log-bin",
      "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", "--performance-schema=OFF",
    ]
    if tls {
      arguments += [
        "--ssl-cert=\(directory)/pki/server.pem", "--ssl-key=\(directory)/pki/server-key.pem", "--ssl-ca=\(directory)/pki/ca.pem",
        "--require-secure-transport=ON",
      ]
    } else {
      arguments.append("--skip-ssl")
    }
    process = try spawnServer("/usr/sbin/mariadbd", arguments, asUser: Self.user, log: directory + "/console.log")
    let ready = eventually(timeout: 60) {
      (try? runTool("/usr/bin/mariadb-admin", ["--no-defaults", "--socket=\(socket)", "-uroot", "ping"], asUser: Self.user)) != nil
    }
    guard ready else { throw HTTPClientError(description: "mariadbd did not come up on \(port); see \(directory)/server.log") }
  }

  /// Stops the server (SIGKILL: as a crash would) and waits until it is gone.
  func stop() {
    guard let process else { return }
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
    self.process = nil
  }

  deinit {
    stop()
    try? FileManager.default.removeItem(atPath: directory)
  }

  @discardableResult
  func admin(_ sql: String) throws -> String {
    try runTool(
      "/usr/bin/mariadb", ["--no-defaults", "--socket=\(socket)", "-uroot", "--batch", "--skip-column-names"], asUser: Self.user,
      stdin: sql)
  }

  func put(id: Int, sealed: String, active: Bool = true) throws {
    try admin(
      "INSERT INTO app.api_credentials VALUES (\(id), '\(sealed)', \(active ? 1 : 0)) ON DUPLICATE KEY UPDATE encrypted_credentials = VALUES(encrypted_credentials), active = VALUES(active)"
    )
  }

  func url(host: String = "127.0.0.1", user: String = "authproxy", query: String = "") -> String {
    "mysql://\(user)@\(host):\(port)/app\(query.isEmpty ? "" : "?" + query)"
  }
}

import AuthProxy
import Foundation
import SandboxAPI
import Synchronization
import TestSupport

/// A fresh ENCRYPTION_KEY (base64 of 32 random bytes) and what seals with it.
struct TestKey: Sendable {
  let base64: String
  let key: EncryptionKey

  init() {
    var bytes = [UInt8](repeating: 0, count: 32)
    for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255) }
    base64 = Data(bytes).base64EncodedString()
    key = try! EncryptionKey(base64: base64)
  }

  var environment: [String: String] { ["ENCRYPTION_KEY": base64] }

  /// Reads row `id` through the `db:` source with this key, as serve does.
  func load(_ id: Int, _ settings: DatabaseSettings) throws(CredentialError) -> Credentials {
    try CredentialSource.load(.database(id: String(id)), environment: environment, database: settings)
  }

  /// Why reading row `id` with this key fails; nil when it reads.
  func loadError(_ id: Int, _ settings: DatabaseSettings) -> CredentialError? {
    do {
      _ = try load(id, settings)
      return nil
    } catch {
      return error
    }
  }

  /// `authproxy seal` output for these credentials.
  func seal(username: String, password: String) throws -> String {
    let json = try JSONSerialization.data(withJSONObject: ["username": username, "password": password])
    return try SealedCredentials.seal(plaintext: [UInt8](json), key: key)
  }

  func seal(_ user: SandboxUser) throws -> String { try seal(username: user.username, password: user.password) }

  /// The same, sealed by PHP's openssl_encrypt as the API's security guide does it; nil when
  /// php is not installed.
  func sealWithPHP(_ user: SandboxUser) throws -> String? {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/php") else { return nil }
    let json = String(
      decoding: try JSONSerialization.data(withJSONObject: ["username": user.username, "password": user.password]), as: UTF8.self)
    let script = """
      $key = base64_decode(getenv('KEY'));
      $iv = random_bytes(16);
      $tag = '';
      $ciphertext = openssl_encrypt(getenv('JSON'), 'aes-256-gcm', $key, OPENSSL_RAW_DATA, $iv, $tag);
      echo base64_encode($iv . $tag . $ciphertext);
      """
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/php")
    process.arguments = ["-r", script]
    process.environment = ["KEY": base64, "JSON": json]
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw HTTPClientError(description: "php openssl_encrypt failed") }
    return String(decoding: data, as: UTF8.self)
  }
}

/// The `db:` source as serve builds it, with settings a test can change while the proxy runs
/// (to point it at another server).
final class DatabaseLoader: Sendable {
  let id: Int
  let key: TestKey
  private let settings: Mutex<DatabaseSettings>

  init(id: Int, key: TestKey, settings: DatabaseSettings) {
    self.id = id
    self.key = key
    self.settings = Mutex(settings)
  }

  func set(_ new: DatabaseSettings) { settings.withLock { $0 = new } }

  func load() throws(CredentialError) -> Credentials {
    try key.load(id, settings.withLock { $0 })
  }

  func loader(pollInterval: Double) -> CredentialLoader {
    CredentialLoader(pollInterval: pollInterval) { [self] () throws(CredentialError) in try load() }
  }
}

/// `--database-*` flags (and variables) through ServeConfig, as serve parses them.
func databaseSettings(_ flags: [String: String], environment: [String: String] = [:]) throws -> DatabaseSettings {
  let config = try ServeConfig.load(
    flags: flags.merging(["upstream": "https://api.example.com"]) { given, _ in given }, environment: environment
  ).get()
  guard let database = config.database else { throw HTTPClientError(description: "no database settings from \(flags)") }
  return database
}

/// A file holding `text`, mode 0600.
func secretFile(_ text: String, in directory: String = temporaryDirectory("db-secret")) throws -> String {
  let path = directory + "/secret-\(UUID().uuidString.prefix(6))"
  try text.write(toFile: path, atomically: true, encoding: .utf8)
  chmod(path, 0o600)
  return path
}

/// The value of an unlabelled sample in Prometheus text, or of one with the given labels.
func metric(_ text: String, _ name: String, _ labels: String = "") -> Double? {
  let prefix = labels.isEmpty ? name + " " : name + "{" + labels + "} "
  return text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.dropFirst(prefix.count)) }
}

import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// Every byte the test received from the proxy: status lines, headers and bodies.
private final class Received {
  private(set) var bytes: [UInt8] = []
  private(set) var responses = 0

  func record(_ response: HTTPResponse) {
    responses += 1
    bytes += Array("HTTP \(response.status)\r\n".utf8)
    for (name, value) in response.headers { bytes += Array("\(name): \(value)\r\n".utf8) }
    bytes += Array("\r\n".utf8)
    bytes += response.body
  }

  func record(raw: [UInt8]) {
    responses += 1
    bytes += raw
  }
}

/// Sends `bytes` on a fresh connection and returns all the proxy wrote until it closed the
/// connection (or went quiet for `timeout` seconds).
private func rawExchange(port: Int, _ bytes: [UInt8], timeout: Int = 5) throws -> [UInt8] {
  let connection = try RawConnection(port: port, timeoutSeconds: timeout)
  try connection.send(bytes)
  return connection.readUntilClosed().bytes
}

/// Finds secrets in text without ever showing them: exact matches for passwords, and any
/// `window` consecutive characters of the random part of a token or key (a truncated or
/// partly masked token is a leak too).
struct SecretScanner {
  struct Needle {
    var label: String
    var whole: [UInt8]?
    var windows: Set<[UInt8]> = []
  }
  private(set) var needles: [Needle] = []
  let window: Int

  init(window: Int = 16) { self.window = window }

  mutating func addExact(_ secret: String, label: String) {
    needles.append(Needle(label: label, whole: Array(secret.utf8)))
  }

  /// `secret`, of which any `window` consecutive bytes of `secret.dropFirst(skip)` count.
  mutating func addRandom(_ secret: String, skippingPrefix skip: Int = 0, label: String) {
    let random = Array(secret.utf8.dropFirst(skip))
    var needle = Needle(label: label, whole: Array(secret.utf8))
    if random.count >= window {
      for start in 0...(random.count - window) { needle.windows.insert(Array(random[start..<(start + window)])) }
    }
    needles.append(needle)
  }

  /// How many times each needle occurs in `haystack`, by label; labels with no hit are left out.
  func hits(in haystack: [UInt8]) -> [String: Int] {
    var counts: [String: Int] = [:]
    var allWindows: [[UInt8]: [String]] = [:]
    for needle in needles {
      for piece in needle.windows { allWindows[piece, default: []].append(needle.label) }
    }
    for needle in needles {
      guard let whole = needle.whole, !whole.isEmpty, needle.windows.isEmpty else { continue }
      var from = haystack.startIndex
      while let range = haystack[from...].firstRange(of: whole) {
        counts[needle.label, default: 0] += 1
        from = range.upperBound
      }
    }
    if haystack.count >= window {
      for start in 0...(haystack.count - window) {
        guard let labels = allWindows[Array(haystack[start..<(start + window)])] else { continue }
        for label in Set(labels) { counts[label, default: 0] += 1 }
      }
    }
    return counts
  }
}

/// SPEC §3: "Passwords, tokens, refresh tokens and the encryption key never appear in any log,
/// metric, error body or crash output". One whole life of the real binary, then every byte it
/// wrote is searched for every secret it ever held.
@Suite(.serialized) struct SecretLeakTests {
  @Test func theScannerFindsWholeAndPartialSecretsAndOnlyThose() {
    var scanner = SecretScanner()
    scanner.addExact("demo-password", label: "password")
    scanner.addRandom("at_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq", skippingPrefix: 3, label: "token")
    #expect(scanner.hits(in: Array("user demo, no secret here; at_ABCDEFGH…".utf8)).isEmpty)
    #expect(scanner.hits(in: Array("body {\"password\":\"demo-password\"}".utf8)) == ["password": 1])
    #expect(scanner.hits(in: Array("Bearer at_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq".utf8))["token"] ?? 0 > 0)
    #expect(scanner.hits(in: Array("token=…KLMNOPQRSTUVWXYZab…".utf8))["token"] ?? 0 > 0, "a 16-character piece is a leak")
  }

  @Test func noSecretEverLeavesTheProxyProcess() throws {
    let directory = temporaryDirectory("authproxy-leak")
    let sandbox = try SandboxAPI.start(pkiDirectory: directory + "/pki")
    defer { sandbox.stop() }
    // Access tokens of 4 s: the proxy refreshes every 2 s while the scenario runs.
    sandbox.setLifetimes(access: 4, refresh: 3600)
    let demo = SandboxAPI.demoUsers[0]
    let rotated = SandboxAPI.demoUsers[1]
    #expect(demo.clientID == rotated.clientID)

    let credentialsPath = directory + "/credentials.json"
    func writeCredentials(_ user: SandboxUser) throws {
      // Written aside and renamed over, as a secret mount or an operator's `install` does.
      let staging = directory + "/.credentials.json.tmp"
      let json = "{\"username\":\"\(user.username)\",\"password\":\"\(user.password)\"}\n"
      #expect(FileManager.default.createFile(atPath: staging, contents: Data(json.utf8), attributes: [.posixPermissions: 0o600]))
      #expect(rename(staging, credentialsPath) == 0)
    }
    try writeCredentials(demo)

    var keyBytes = [UInt8](repeating: 0, count: 32)
    for i in keyBytes.indices { keyBytes[i] = UInt8.random(in: 0...255) }
    let encryptionKey = Data(keyBytes).base64EncodedString()

    // Issue 21: every request comes from an app of --apps-file, known by its key.
    func randomKey() -> String { (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined() }
    let appKey = randomKey()
    let narrowKey = randomKey()
    let strangerKey = randomKey()
    func sha256Hex(_ key: String) -> String { SHA256Hasher.hash(Array(key.utf8)).map { String(format: "%02x", $0) }.joined() }
    let appsPath = directory + "/apps.json"
    let apps =
      #"{"apps":[{"name":"leak","key_sha256":"\#(sha256Hex(appKey))","routes":["ANY /api/*"]},"#
      + #"{"name":"narrow","key_sha256":"\#(sha256Hex(narrowKey))","routes":["GET /api/v1/products"]}]}"#
    #expect(FileManager.default.createFile(atPath: appsPath, contents: Data(apps.utf8), attributes: [.posixPermissions: 0o600]))

    let port = freePort()
    let adminPort = freePort()
    let accessLogPath = directory + "/access.log"
    let proxy = try ProxyProcess(
      [
        "serve", "--upstream", sandbox.baseURL, "--ca-file", sandbox.caPath, "--listen", "127.0.0.1:\(port)",
        "--admin-listen", "127.0.0.1:\(adminPort)", "--workers", "2", "--access-log", accessLogPath,
        "--credentials", "file:\(credentialsPath)", "--max-body", "1KiB", "--retries", "1", "--retry-delay", "100ms",
        "--timeout", "5s", "--apps-file", appsPath, "--alert-route-denied-threshold", "1",
      ], environment: ["ENCRYPTION_KEY": encryptionKey])
    let stdout = PipeCollector(proxy.stdout.fileHandleForReading)
    let stderr = PipeCollector(proxy.stderr.fileHandleForReading)
    var exitStatus: Int32?
    defer { if exitStatus == nil { _ = proxy.stop() } }
    let received = Received()

    func get(
      _ target: String, method: String = "GET", headers: [(String, String)] = [], body: [UInt8] = [], key: String? = nil
    ) throws -> HTTPResponse {
      let response = try request(
        port: port, method: method, target: target, headers: [("Proxy-Authorization", "Bearer \(key ?? appKey)")] + headers, body: body)
      received.record(response)
      return response
    }
    func admin(_ path: String) throws -> HTTPResponse {
      let response = try request(port: adminPort, target: path)
      received.record(response)
      return response
    }

    // Start and log in.
    #expect(eventually(timeout: 20) { (try? admin("/readyz").status) == 200 })
    #expect(try admin("/healthz").status == 200)

    // Traffic, through a refresh or two.
    let refreshesBefore = sandbox.counters.refreshes
    #expect(
      eventually(timeout: 15) {
        _ = try? get("/api/v1/products?page=1&limit=5")
        _ = try? get(
          "/api/v1/orders", method: "POST", headers: [("Content-Type", "application/json")], body: Array("{\"product_id\":1}".utf8))
        _ = try? get("/api/v1/bytes?size=300")
        return sandbox.counters.refreshes >= refreshesBefore + 2
      })
    // (Not HEAD /products: the sandbox answers that HEAD with a body, which spoils the pooled
    // upstream connection for the next request; see the report.)
    #expect(try get("/api/v1/bytes?size=300", method: "HEAD").status == 200)
    #expect(try get("/api/v1/flaky?key=leak&fail=1").status == 200, "a retried request")

    // A server-side revoke: the 401 is answered by a new login and a replay.
    let loginsBefore = sandbox.counters.logins
    sandbox.revokeAllTokens()
    #expect(try get("/api/v1/products?page=2").status == 200)
    #expect(sandbox.counters.logins == loginsBefore + 1)

    // A rotation: the file now holds the rotated password of the same client.
    try writeCredentials(rotated)
    #expect(eventually(timeout: 15) { stderr.text.contains("same client") })
    #expect(try get("/api/v1/products").status == 200)

    // Errors of every kind.
    #expect(try get("/api/v1/no-such-thing").status == 404)
    #expect(try get("/api/v1/orders", method: "POST", body: [UInt8](repeating: 0x7B, count: 4096)).status == 413)
    #expect(try get("/auth/login", method: "POST", body: Array("{}".utf8)).status == 403)
    #expect(try get("/auth/refresh", method: "POST", headers: [("Authorization", "Bearer not-ours")], body: Array("{}".utf8)).status == 403)
    #expect(try get("/api/v1/status/401").status == 401, "a 401 that survives the replay goes to the app")
    #expect(try get("/api/v1/status/403").status == 403)
    #expect(try get("/api/v1/status/503").status == 503)
    #expect(try get("/api/v1/reset?key=leak", method: "POST", body: Array("{}".utf8)).status == 502)
    for hostile in [
      "GET http://evil.example/api/v1/products HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
      "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\nConnection: close\r\n\r\n",
      "POST /api/v1/orders HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "GET /api/v1/products HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
      "GET /api/v1/products\u{0} HTTP/1.1\r\nHost: a\r\n\r\n",
      "BREW /pot HTCPCP/1.0\r\n\r\n",
    ] {
      let answer = try rawExchange(port: port, Array(hostile.utf8))
      received.record(raw: answer)
      #expect(String(decoding: answer.prefix(12), as: UTF8.self) == "HTTP/1.1 400", "\(hostile.prefix(24))")
    }

    // Apps: an unknown key, a route the app may not call; the key never goes upstream.
    #expect(try get("/api/v1/products", key: strangerKey).status == 407)
    #expect(try get("/api/v1/orders", method: "POST", body: Array("{}".utf8), key: narrowKey).status == 403)
    #expect(try get("/api/v1/products", key: narrowKey).status == 200)
    let forwarded = sandbox.lastAPIRequest?.headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n") ?? ""
    #expect(!forwarded.lowercased().contains("proxy-authorization"))
    #expect(eventually(timeout: 10) { stderr.text.contains("route_denied") })

    // The admin port, and the operator's signals.
    let ready = try admin("/readyz")
    #expect(ready.status == 200)
    #expect(try admin("/healthz").status == 200)
    _ = try? admin("/metrics")
    kill(proxy.pid, SIGHUP)
    #expect(eventually(timeout: 10) { stderr.text.contains("SIGHUP") })
    #expect(try get("/api/v1/products").status == 200)
    exitStatus = proxy.stop()
    #expect(exitStatus == 0)
    #expect(eventually { stdout.isFinished && stderr.isFinished })

    // What there is to search, and that it is the whole story.
    let accessLog = (try? Data(contentsOf: URL(fileURLWithPath: accessLogPath))).map { [UInt8]($0) } ?? []
    let logText = String(decoding: accessLog, as: UTF8.self)
    let lines = logText.split(separator: "\n")
    #expect(lines.count >= 25, "\(lines.count) access-log lines")
    #expect(logText.contains("\"reauth\":true"))
    #expect(logText.contains(#""app":"leak""#) && logText.contains(#""error":"route_denied""#))
    for status in [400, 401, 403, 404, 407, 413, 502] { #expect(logText.contains("\"status\":\(status)"), "\(status)") }
    let diagnostics = stderr.text
    for phrase in ["login succeeded", "token refreshed", "same client", "SIGHUP", "stopped"] {
      #expect(diagnostics.contains(phrase), "stderr lacks '\(phrase)'")
    }
    #expect(received.responses >= 25)

    var scanner = SecretScanner()
    scanner.addExact(demo.password, label: "password of \(demo.username)")
    scanner.addExact(rotated.password, label: "password of \(rotated.username)")
    let issued = sandbox.issuedSecrets
    #expect(issued.count >= 10, "\(issued.count) tokens issued")
    for (index, token) in issued.enumerated() {
      let kind = token.hasPrefix("rt_") ? "refresh token" : "access token"
      scanner.addRandom(token, skippingPrefix: 3, label: "\(kind) #\(index)")
    }
    scanner.addRandom(encryptionKey, label: "ENCRYPTION_KEY")
    scanner.addRandom(appKey, label: "the key of app leak")
    scanner.addRandom(narrowKey, label: "the key of app narrow")
    scanner.addRandom(strangerKey, label: "an unknown app key")

    let sources: [(String, [UInt8])] = [
      ("stdout", stdout.bytes), ("stderr", stderr.bytes), ("the access log", accessLog),
      ("responses to the test", received.bytes),
    ]
    for (name, bytes) in sources {
      let hits = scanner.hits(in: bytes)
      // Counts and labels only: never the secret, never the text around it.
      #expect(
        hits.isEmpty,
        "\(hits.values.reduce(0, +)) secret occurrence(s) in \(name): \(hits.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))"
      )
    }
  }
}

extension SecretLeakTests {
  /// Issue 17: `--upstream 'https://user:S3cr3t@host'` exited 64 and printed the password. Every
  /// way a secret can reach a start-up error (a flag, its variable, a stray argument, a secret
  /// variable with a bad value) exits 64 or 69, names where the problem is, and shows no secret.
  @Test func noStartUpErrorShowsASecret() throws {
    let secret = "S3cr3t-Hunter2-\(UInt32.random(in: 100_000...999_999))"
    let validKey = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
    let credentials = ["API_USERNAME": "demo", "API_PASSWORD": "demo-password"]
    let directory = temporaryDirectory("authproxy-leak-startup")
    let notPEM = directory + "/not-a-ca.pem"
    #expect(FileManager.default.createFile(atPath: notPEM, contents: Data("not a certificate\n".utf8)))
    struct Case {
      var arguments: [String]
      var environment: [String: String]
      var names: String
      var status: Int32 = 64
    }
    let cases: [Case] = [
      Case(arguments: ["serve", "--upstream", "https://user:\(secret)@api.example.com"], environment: credentials, names: "--upstream"),
      Case(arguments: ["serve", "--upstream", "https://:\(secret)@api.example.com/v1"], environment: credentials, names: "--upstream"),
      Case(arguments: ["serve", "--upstream", "http://user:\(secret)@api.example.com"], environment: credentials, names: "--upstream"),
      Case(
        arguments: ["serve", "--upstream", "https://api.example.com/base?token=\(secret)"], environment: credentials, names: "--upstream"),
      Case(arguments: ["serve", "--upstream=https://user:\(secret)@api.example.com"], environment: credentials, names: "--upstream"),
      Case(
        arguments: ["serve"], environment: credentials.merging(["AUTHPROXY_UPSTREAM": "https://user:\(secret)@api.example.com"]) { $1 },
        names: "AUTHPROXY_UPSTREAM"),
      Case(arguments: ["serve", "https://user:\(secret)@api.example.com"], environment: credentials, names: "Unexpected argument"),
      Case(
        arguments: ["check-credentials", "--upstream", "https://user:\(secret)@api.example.com"], environment: credentials,
        names: "--upstream"),
      Case(
        arguments: ["serve", "--upstream", "https://api.example.com", "--token-store", "redis://:\(secret)@127.0.0.1:6379"],
        environment: credentials, names: "--token-store"),
      Case(
        // Names are looked up when the store connects (never at start-up): a bad port is the start-up error here.
        arguments: ["serve", "--upstream", "https://api.example.com", "--token-store", "redis://:\(secret)@host.invalid:99999"],
        environment: credentials.merging(["ENCRYPTION_KEY": validKey]) { $1 }, names: "--token-store"),
      Case(
        arguments: ["serve", "--upstream", "https://api.example.com", "--token-store", "redis://127.0.0.1:6379"],
        environment: credentials.merging(["ENCRYPTION_KEY": secret]) { $1 }, names: "ENCRYPTION_KEY"),
      Case(
        arguments: ["serve", "--upstream", "https://api.example.com", "--alert-webhook", "http://user:\(secret)@alerts.example.com/hook"],
        environment: credentials, names: "--alert-webhook"),
      Case(
        arguments: ["serve", "--upstream", "https://api.example.com", "--alert-webhook", "ftp://alerts.example.com/\(secret)"],
        environment: credentials, names: "--alert-webhook"),
      Case(
        arguments: ["serve", "--upstream", "https://api.example.com", "--credentials", "encrypted-file:/nonexistent/creds.sealed"],
        environment: ["ENCRYPTION_KEY": secret], names: "ENCRYPTION_KEY"),
      Case(
        arguments: ["serve", "--upstream", "https://api.example.com", "--credentials", "vault:secret/data/authproxy"],
        environment: ["VAULT_ADDR": "http://user:\(secret)@vault.example.com:8200", "VAULT_TOKEN": secret], names: "VAULT_ADDR"),
      Case(
        arguments: ["serve", "--upstream", "https://api.example.com", "--credentials", "vault:secret/data/authproxy"],
        environment: ["VAULT_ADDR": "https://127.0.0.1:1", "VAULT_TOKEN": secret], names: "Vault", status: 69),
      Case(
        arguments: [
          "serve", "--upstream", "https://api.example.com", "--ca-file", notPEM, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
        ],
        environment: ["API_USERNAME": "demo", "API_PASSWORD": secret], names: "--ca-file"),
    ]
    var scanner = SecretScanner()
    scanner.addExact(secret, label: "the secret")
    for (index, run) in cases.enumerated() {
      let result = try runBinary(run.arguments, environment: run.environment)
      let hits = scanner.hits(in: Array((result.stdout + result.stderr).utf8))
      // The case by its number and flag: the arguments hold the secret.
      #expect(hits.isEmpty, "case \(index) (\(run.names)): the secret is in the output")
      #expect(result.status == run.status, "case \(index) (\(run.names)): exit \(result.status)")
      #expect(result.stderr.contains(run.names), "case \(index): the message names \(run.names)")
    }
  }
}

import AuthProxy
import Foundation
import SandboxAPI
import Testing
import TestSupport

/// The `authproxy` binary itself: exit codes, messages, and a 100 MiB response streamed
/// through a real proxy process.
@Suite(.serialized) struct CommandLineTests {
  let credentials = ["API_USERNAME": "demo", "API_PASSWORD": "demo-password"]

  @Test func anHTTPUpstreamIsRefusedWithExit64NamingTheFlag() throws {
    let run = try runBinary(["serve", "--upstream", "http://api.example.com"], environment: credentials)
    #expect(run.status == 64)
    #expect(run.stderr.contains("--upstream"))
    #expect(run.stderr.contains("https://"))
  }

  @Test func missingCredentialsExit64NamingTheVariables() throws {
    let run = try runBinary(["serve", "--upstream", "https://api.example.com"], environment: ["API_USERNAME": "demo"])
    #expect(run.status == 64)
    #expect(run.stderr.contains("API_PASSWORD"))
    #expect(!run.stderr.contains("API_USERNAME is not set"))
  }

  @Test func aMalformedDurationAndAnUnreadableCAFileAreBothReported() throws {
    let run = try runBinary(
      ["serve", "--upstream", "https://api.example.com", "--timeout", "soon", "--ca-file", "/nonexistent/ca.pem"],
      environment: credentials)
    #expect(run.status == 64)
    #expect(run.stderr.contains("--timeout"))
    #expect(run.stderr.contains("--ca-file"))
  }

  @Test func aVariableIsUsedAndAFlagBeatsIt() throws {
    let fromVariable = try runBinary(
      ["serve"], environment: credentials.merging(["AUTHPROXY_UPSTREAM": "http://x", "AUTHPROXY_TIMEOUT": "1s"]) { $1 })
    #expect(fromVariable.status == 64)
    #expect(fromVariable.stderr.contains("AUTHPROXY_UPSTREAM"))
    let flagWins = try runBinary(
      ["serve", "--upstream", "https://api.example.com", "--workers", "zero"],
      environment: credentials.merging(["AUTHPROXY_UPSTREAM": "http://x"]) { $1 })
    #expect(flagWins.status == 64)
    #expect(!flagWins.stderr.contains("upstream"))
    #expect(flagWins.stderr.contains("--workers"))
  }

  @Test func helpDocumentsEveryFlagWithItsDefaultAndVariable() throws {
    let run = try runBinary(["serve", "--help"])
    #expect(run.status == 0)
    for flag in ServeConfig.flags {
      #expect(run.stdout.contains("--\(flag.name)"), "\(flag.name)")
      #expect(run.stdout.contains(flag.environmentVariable), "\(flag.environmentVariable)")
    }
    #expect(run.stdout.contains("default: 127.0.0.1:8080"))
  }

  @Test func a100MiBResponseStreamsThroughIntactWithFlatMemory() throws {
    let directory = temporaryDirectory()
    let sandbox = try SandboxAPI.start(pkiDirectory: directory + "/pki")
    defer { sandbox.stop() }
    let port = freePort()
    let proxy = try ProxyProcess(
      [
        "serve", "--upstream", sandbox.baseURL, "--ca-file", sandbox.caPath, "--listen", "127.0.0.1:\(port)",
        "--admin-listen", "127.0.0.1:\(freePort())", "--workers", "1", "--access-log", directory + "/access.log",
      ], environment: credentials)
    defer { _ = proxy.stop() }
    #expect(eventually { (try? request(port: port, target: "/api/v1/echo").status) == 200 })
    let size = 100 * 1024 * 1024
    let hasher = SHA256Hasher()
    var received = 0
    let expected = SHA256Hasher()
    var pattern = [UInt8](repeating: 0, count: 251 * 1024)
    for i in 0..<pattern.count { pattern[i] = UInt8(i % 251) }
    var remaining = size
    while remaining > 0 {
      let n = min(remaining, pattern.count)
      expected.update(pattern[0..<n])
      remaining -= n
    }
    let connection = try RawConnection(port: port)
    try connection.send(requestBytes(method: "GET", target: "/api/v1/bytes?size=\(size)"))
    let response = try connection.readResponse { piece in
      hasher.update(piece)
      received += piece.count
    }
    #expect(response.status == 200)
    #expect(received == size)
    #expect(hasher.finalize() == expected.finalize())
    let peakKiB = try #require(proxy.memoryKiB("VmHWM"))
    #expect(peakKiB < 48 * 1024, "peak RSS \(peakKiB) KiB while streaming 100 MiB")
    #expect(proxy.stop() == 0, "SIGTERM exits 0")
  }
}

extension CommandLineTests {
  @Test func sigusr1ReopensTheAccessLogForLogrotate() throws {
    let directory = temporaryDirectory()
    let sandbox = try SandboxAPI.start(pkiDirectory: directory + "/pki")
    defer { sandbox.stop() }
    let port = freePort()
    let log = directory + "/access.log"
    let proxy = try ProxyProcess(
      [
        "serve", "--upstream", sandbox.baseURL, "--ca-file", sandbox.caPath, "--listen", "127.0.0.1:\(port)",
        "--admin-listen", "127.0.0.1:\(freePort())", "--workers", "1", "--access-log", log,
      ], environment: credentials)
    defer { _ = proxy.stop() }
    #expect(eventually { (try? request(port: port, target: "/api/v1/echo?first").status) == 200 })
    #expect(eventually { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("/api/v1/echo") })
    try FileManager.default.moveItem(atPath: log, toPath: log + ".1")
    kill(proxy.pid, SIGUSR1)
    #expect(eventually { FileManager.default.fileExists(atPath: log) })
    #expect(try request(port: port, target: "/api/v1/products").status == 200)
    #expect(eventually { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("/api/v1/products") })
    #expect(!(try String(contentsOfFile: log + ".1", encoding: .utf8)).contains("/api/v1/products"))
    #expect(proxy.stop() == 0)
  }
}

extension CommandLineTests {
  @Test func jsonDiagnosticLogLinesParseAndLevelsFilter() throws {
    let admin = freePort()
    let proxy = try ProxyProcess(
      [
        "serve", "--upstream", "https://127.0.0.1:1", "--listen", "127.0.0.1:\(freePort())", "--admin-listen",
        "127.0.0.1:\(admin)", "--log-format", "json", "--log-level", "warning",
      ], environment: credentials)
    // The first login has failed (and been logged) once readiness names the cause.
    #expect(eventually { (try? request(port: admin, target: "/readyz"))?.text.contains("refused") == true })
    #expect(proxy.stop() == 0)
    let lines = proxy.errorOutput.split(separator: "\n")
    #expect(!lines.isEmpty)
    for line in lines {
      let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
      #expect(object != nil, "not JSON: \(line)")
      #expect(["warning", "error", "critical"].contains(object?["level"] as? String ?? ""), "below --log-level: \(line)")
    }
    #expect(!proxy.errorOutput.contains("demo-password"))
    let bad = try runBinary(["serve", "--upstream", "https://x", "--log-format", "xml"], environment: credentials)
    #expect(bad.status == 64 && bad.stderr.contains("--log-format"))
  }
}

extension CommandLineTests {
  @Test func checkCredentialsLogsInAndLogsOutOnlyWhenAsked() throws {
    let sandbox = try SandboxAPI.start(pkiDirectory: temporaryDirectory() + "/pki")
    defer { sandbox.stop() }
    let flags = ["check-credentials", "--upstream", sandbox.baseURL, "--ca-file", sandbox.caPath]
    let ok = try runBinary(flags, environment: credentials)
    #expect(ok.status == 0, "\(ok.stderr)")
    #expect(ok.stdout.contains("client 123456"))
    #expect(sandbox.counters.logins == 1)
    #expect(sandbox.counters.logouts == 0, "no logout without --logout")
    let refused = try runBinary(flags, environment: ["API_USERNAME": "demo", "API_PASSWORD": "not-the-password"])
    #expect(refused.status == 1)
    #expect(refused.stderr.contains("invalid credentials"))
    #expect(!refused.stderr.contains("not-the-password"))
    sandbox.failLogins(.ipNotWhitelisted)
    let whitelist = try runBinary(flags, environment: credentials)
    #expect(whitelist.status == 1 && whitelist.stderr.contains("IP address not authorized"))
    sandbox.failLogins(.rateLimited(retryAfterSeconds: 30))
    let limited = try runBinary(flags, environment: credentials)
    #expect(limited.status == 1 && limited.stderr.contains("rate limited"))
    sandbox.failLogins(nil)
    let logout = try runBinary(flags + ["--logout"], environment: credentials)
    #expect(logout.status == 0)
    #expect(sandbox.counters.logouts == 1)
    let unreachable = try runBinary(["check-credentials", "--upstream", "https://127.0.0.1:1"], environment: credentials)
    #expect(unreachable.status == 69)
    let help = try runBinary(["check-credentials", "--help"])
    #expect(help.stdout.contains("revokes"))
  }

  @Test func sealAndUnsealRoundTripThroughTheBinary() throws {
    let key = Data((0..<32).map { UInt8($0) }).base64EncodedString()
    let json = #"{"username":"demo","password":"demo-password"}"#
    let sealed = try runBinary(["seal"], environment: ["ENCRYPTION_KEY": key], stdin: json)
    #expect(sealed.status == 0)
    #expect(!sealed.stdout.contains("demo-password"))
    let opened = try runBinary(["unseal"], environment: ["ENCRYPTION_KEY": key], stdin: sealed.stdout)
    #expect(opened.status == 0)
    #expect(opened.stdout.contains("demo-password"))
    let short = try runBinary(["seal"], environment: ["ENCRYPTION_KEY": "c2hvcnQ="], stdin: json)
    #expect(short.status == 64 && short.stderr.contains("openssl rand -base64 32"))
    let wrongKey = Data((0..<32).map { UInt8(255 - $0) }).base64EncodedString()
    let refused = try runBinary(["unseal"], environment: ["ENCRYPTION_KEY": wrongKey], stdin: sealed.stdout)
    #expect(refused.status == 1)
    #expect(!refused.stdout.contains("demo"))
  }
}

extension CommandLineTests {
  /// `authproxy dev` writes a throw-away CA and the sandbox server's private key to a directory
  /// of its own under TMPDIR; stopping it, or a bad flag, must not leave them there.
  @Test func devRemovesItsThrowAwayKeysWhenItStops() throws {
    let scratch = temporaryDirectory("authproxy-dev-tmp")
    let leftovers = { (try? FileManager.default.contentsOfDirectory(atPath: scratch)) ?? ["unreadable"] }
    let port = freePort()
    let dev = try ProxyProcess(
      ["dev", "--listen", "127.0.0.1:\(port)", "--admin-listen", "127.0.0.1:\(freePort())", "--workers", "1"],
      environment: ["TMPDIR": scratch])
    #expect(eventually { (try? request(port: port, target: "/api/v1/products?limit=1").status) == 200 })
    let made = leftovers()
    #expect(made.count == 1 && made[0].hasPrefix("authproxy-dev-"), "\(made)")
    #expect(FileManager.default.fileExists(atPath: scratch + "/" + (made.first ?? "") + "/server-key.pem"))
    #expect(dev.stop() == 0)
    #expect(leftovers().isEmpty, "\(leftovers())")

    let refused = try runBinary(["dev", "--timeout", "soon"], environment: ["TMPDIR": scratch])
    #expect(refused.status == 64 && refused.stderr.contains("--timeout"))
    #expect(leftovers().isEmpty, "\(leftovers())")
  }
}

extension CommandLineTests {
  /// AES-128-GCM goes first among the TLS 1.3 suites offered upstream only while the list is
  /// OpenSSL's default: a list the system's OpenSSL configuration sets (a compliance policy) is
  /// offered as configured.
  @Test func anOpenSSLConfiguredSuiteListIsKeptAsIs() throws {
    let directory = temporaryDirectory()
    let conf = directory + "/openssl.cnf"
    try """
    openssl_conf = init
    [init]
    ssl_conf = ssl_section
    [ssl_section]
    system_default = system_default_section
    [system_default_section]
    Ciphersuites = TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256

    """.write(toFile: conf, atomically: true, encoding: .utf8)
    func offered(_ environment: [String: String]) throws -> String {
      let adminPort = freePort()
      let proxy = try ProxyProcess(
        [
          "serve", "--upstream", "https://127.0.0.1:1", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:\(adminPort)",
          "--workers", "1", "--log-level", "debug",
        ], environment: credentials.merging(environment) { $1 })
      #expect(eventually { (try? request(port: adminPort, target: "/healthz").status) == 200 })
      #expect(proxy.stop() == 0)
      let line = proxy.errorOutput.split(separator: "\n").first { $0.contains("TLS 1.3 suites offered") }
      return line.map { String($0.split(separator: " ").last ?? "") } ?? "no such line"
    }
    #expect(try offered([:]) == "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256")
    #expect(try offered(["OPENSSL_CONF": conf]) == "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256")
  }
}

/// The listener's access control (SPEC §2 --allow-cidr).
@Suite(.serialized) struct AccessControlTests {
  @Test func clientsOutsideAllowCIDRGet403AndALogLine() throws {
    let proxy = try ProxyHarness(flags: ["allow-cidr": "10.0.0.0/8,fd00::/8"])
    defer { proxy.stop() }
    let response = try proxy.get("/api/v1/echo")
    #expect(response.status == 403)
    #expect(response.errorCode == "forbidden")
    #expect(response.errorMessage?.contains("--allow-cidr") == true)
    #expect(proxy.sandbox.counters.apiRequests == 0)
    #expect(eventually { proxy.logs.all.contains { $0.contains("outside --allow-cidr") } })
  }

  @Test func aNonLoopbackListenerWithoutAllowCIDRIsWarnedAbout() throws {
    let open = try ProxyHarness(flags: ["listen": "0.0.0.0:0"])
    defer { open.stop() }
    #expect(open.logs.all.contains { $0.contains("not a loopback address") })
    #expect(try open.get("/api/v1/echo").status == 200, "loopback clients are still allowed by default")
    let explicit = try ProxyHarness(flags: ["listen": "0.0.0.0:0", "allow-cidr": "127.0.0.0/8"])
    defer { explicit.stop() }
    #expect(!explicit.logs.all.contains { $0.contains("not a loopback address") })
  }
}

/// Issue 17, point 7: every start-up problem exits 64 (the flag and the fix) or 69 (something
/// the host does not offer now), never 1, and names its flag.
extension CommandLineTests {
  @Test func aCAFileThatIsNotPEMExits64NamingTheFlag() throws {
    let directory = temporaryDirectory()
    let path = directory + "/ca.pem"
    #expect(FileManager.default.createFile(atPath: path, contents: Data("just text\n".utf8)))
    let run = try runBinary(
      ["serve", "--upstream", "https://api.example.com", "--ca-file", path, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
      environment: credentials)
    #expect(run.status == 64)
    #expect(run.stderr.contains("--ca-file"))
    #expect(run.stderr.contains("PEM"))
    let check = try runBinary(["check-credentials", "--upstream", "https://127.0.0.1:1", "--ca-file", path], environment: credentials)
    #expect(check.status == 64, "check-credentials too")
    #expect(check.stderr.contains("--ca-file"))
  }

  @Test func aClientKeyThatIsNotPEMExits64NamingTheFlags() throws {
    let directory = temporaryDirectory()
    let path = directory + "/client.pem"
    #expect(FileManager.default.createFile(atPath: path, contents: Data("just text\n".utf8)))
    let run = try runBinary(
      [
        "serve", "--upstream", "https://api.example.com", "--client-cert", path, "--client-key", path, "--listen", "127.0.0.1:0",
        "--admin-listen", "127.0.0.1:0",
      ], environment: credentials)
    #expect(run.status == 64)
    #expect(run.stderr.contains("--client-cert"))
  }

  /// Also when the holder set SO_REUSEPORT (another proxy, or an authproxy from before the
  /// workers shared one socket): the listener does not set it, so two instances never split a
  /// port's clients between them silently.
  @Test(arguments: [false, true]) func aPortInUseExits69NamingTheListenerFlag(holderReusesPort: Bool) throws {
    let (fd, port) = try ListeningSocket.bind(host: "127.0.0.1", port: 0, reusePort: holderReusesPort)
    defer { close(fd) }
    for (flag, other) in [("--listen", "--admin-listen"), ("--admin-listen", "--listen")] {
      let run = try runBinary(
        ["serve", "--upstream", "https://api.example.com", flag, "127.0.0.1:\(port)", other, "127.0.0.1:0"], environment: credentials)
      #expect(run.status == 69, "\(flag)")
      #expect(run.stderr.contains("\(flag) 127.0.0.1:\(port)"), "\(run.stderr)")
      #expect(run.stderr.contains("in use"))
    }
  }

  @Test func aListenAddressThatIsNotAnIPExits64() throws {
    let run = try runBinary(
      ["serve", "--upstream", "https://api.example.com", "--listen", "proxy.example.com:8080", "--admin-listen", "127.0.0.1:0"],
      environment: credentials)
    #expect(run.status == 64)
    #expect(run.stderr.contains("--listen"))
  }

  @Test func aNegativeDurationIsNamedAsSuchNotAMissingValue() throws {
    let run = try runBinary(["serve", "--upstream", "https://api.example.com", "--timeout", "-5s"], environment: credentials)
    #expect(run.status == 64)
    #expect(run.stderr.contains("--timeout"))
    #expect(run.stderr.contains("negative"))
    #expect(!run.stderr.contains("Missing value"))
  }

  @Test func anUpstreamBasePathIsLoggedAtStart() throws {
    let adminPort = freePort()
    let proxy = try ProxyProcess(
      [
        "serve", "--upstream", "https://127.0.0.1:1/api/v2", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:\(adminPort)",
        "--workers", "1",
      ], environment: credentials)
    #expect(eventually { (try? request(port: adminPort, target: "/healthz").status) == 200 })
    #expect(proxy.stop() == 0)
    let stderr = proxy.errorOutput
    #expect(stderr.contains("base path /api/v2"), "\(stderr)")
    #expect(stderr.contains("/api/v2/auth/login"))
  }
}

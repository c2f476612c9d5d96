import ArgumentParser
import AuthProxy
import FoundationEssentials
import Glibc
import SandboxAPI
import Synchronization

struct Dev: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run the proxy against a built-in sandbox of the API (TLS with a throw-away CA, demo credentials).",
    discussion: """
      For trying authproxy with no account: prints a curl line that goes through the proxy to the sandbox. \
      The throw-away CA and the sandbox's key live in a directory of their own under TMPDIR (default /tmp), \
      removed when the command exits.
      """)

  @Option(help: "Where the sandbox API listens (host:port; port 0 picks a free one).")
  var sandboxListen = "127.0.0.1:0"

  @OptionGroup var flags: ServeFlags

  func run() throws {
    guard let sandboxAddress = HostPort.parse(sandboxListen) else {
      printError("authproxy: --sandbox-listen: '\(sandboxListen)' is not host:port")
      Glibc.exit(64)
    }
    let pkiDirectory = makeTemporaryDirectory()
    let sandbox: SandboxAPI
    do {
      sandbox = try SandboxAPI.start(host: sandboxAddress.host, port: sandboxAddress.port, pkiDirectory: pkiDirectory)
    } catch {
      printError("authproxy: --sandbox-listen \(sandboxAddress): cannot start the sandbox API: \(error); choose another address")
      Glibc.exit(69)
    }
    let demo = SandboxAPI.demoUsers[0]
    let config = flags.config(
      environment: processEnvironment(), overrides: ["upstream": sandbox.baseURL, "ca-file": sandbox.caPath])
    let credentials = Credentials(username: demo.username, password: Secret(demo.password))
    let logger = makeLogger(config)
    try runUntilSignalled(config: config, credentials: credentials, logger: logger) { runtime in
      let host = config.listen.host.contains(":") ? "[\(config.listen.host)]" : config.listen.host
      printOut(
        """
        authproxy dev: sandbox API at \(sandbox.baseURL) (throw-away CA \(sandbox.caPath)), user '\(demo.username)'
        authproxy dev: proxy on http://\(host):\(runtime.proxyPort), admin on http://\(config.adminListen.host):\(runtime.adminPort)

        Try it:
          curl -s http://\(host):\(runtime.proxyPort)/api/v1/products?limit=3
          curl -s http://\(host):\(runtime.proxyPort)/api/v1/echo

        Ctrl-C stops it.
        """)
    }
  }

  private func makeTemporaryDirectory() -> String {
    let base = (processEnvironment()["TMPDIR"] ?? "/tmp") + "/authproxy-dev-XXXXXX"
    var template = Array(base.utf8CString)
    guard let made = mkdtemp(&template) else {
      printError("authproxy: cannot create a temporary directory under \(base) (set TMPDIR to a writable directory)")
      Glibc.exit(69)
    }
    let path = String(cString: made)
    DevScratch.removeAtExit(path)
    return path
  }
}

/// What `authproxy dev` made for one run only: the directory holding the sandbox's throw-away CA
/// and its server's private key. It goes when the process exits, whichever way: Ctrl-C, a
/// bad flag (64) or a listener that cannot start (69). Only SIGKILL leaves it behind.
enum DevScratch {
  private static let directory = Mutex<String?>(nil)

  /// Called once, with the directory `makeTemporaryDirectory` made.
  static func removeAtExit(_ path: String) {
    directory.withLock { $0 = path }
    atexit {
      if let path = DevScratch.directory.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
    }
  }
}

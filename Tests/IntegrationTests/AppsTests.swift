import AuthProxy
import Foundation
import SandboxAPI
import Synchronization
import Testing
import TestSupport

/// Issue 21, points 1 and 2 over real sockets: apps known by their key or their uid, 407 for
/// anyone else, route rules per app and global, reloads, the log, the metrics and the alert.
@Suite(.serialized) struct AppsTests {
  static let billingKey = "k-billing-5f1d0c8a9e7b4c3d2a1f0e9d8c7b6a5f"
  static let reportsKey = "k-reports-0a1b2c3d4e5f60718293a4b5c6d7e8f9"

  static func sha256(_ key: String) -> String {
    SHA256Hasher.hash(Array(key.utf8)).map { String(format: "%02x", $0) }.joined()
  }

  /// Writes an apps file (mode 0600) and returns its path.
  static func writeApps(_ json: String, in directory: String = temporaryDirectory("authproxy-apps"), mode: mode_t = 0o600) -> String {
    let path = directory + "/apps.json"
    let staging = directory + "/.apps.json.new"
    #expect(FileManager.default.createFile(atPath: staging, contents: Data(json.utf8)))
    #expect(chmod(staging, mode) == 0)
    #expect(rename(staging, path) == 0)
    return path
  }

  static let twoApps = """
    {"apps":[
      {"name":"billing","key_sha256":"\(sha256(billingKey))","routes":["GET /api/v1/echo*","POST /api/v1/orders"],
       "rate_limit":"5/s","burst":10,"max_concurrency":4},
      {"name":"reports","key_sha256":"\(sha256(reportsKey))","routes":["GET /api/v1/products*"]}
    ]}
    """

  private func bearer(_ key: String) -> [(String, String)] { [("Proxy-Authorization", "Bearer \(key)")] }

  private func metricsText(_ proxy: ProxyHarness) -> String { (try? proxy.admin("/metrics").text) ?? "" }

  @Test func appsAreKnownByTheirKeyAndOthersGet407() throws {
    let proxy = try ProxyHarness(flags: ["apps-file": Self.writeApps(Self.twoApps)])
    defer { proxy.stop() }

    let none = try proxy.get("/api/v1/echo", headers: [("X-Request-ID", "apps-none")])
    #expect(none.status == 407)
    #expect(none.header("Proxy-Authenticate") == #"Bearer realm="authproxy""#)
    #expect(none.text.contains(#""code":"proxy_auth_required""#))
    #expect(none.header("Content-Type") == "application/json")
    let unknown = try proxy.get("/api/v1/echo", headers: bearer("k-not-an-app") + [("X-Request-ID", "apps-unknown")])
    #expect(unknown.status == 407)
    #expect(!unknown.text.contains("k-not-an-app"))

    let known = try proxy.get("/api/v1/echo", headers: bearer(Self.billingKey) + [("X-Request-ID", "apps-billing")])
    #expect(known.status == 200)
    // The echo is what the API received: no Proxy-Authorization, no key.
    #expect(!known.text.lowercased().contains("proxy-authorization"))
    #expect(!known.text.contains(Self.billingKey))
    #expect(known.text.contains("Bearer "), "the proxy's own token went upstream")

    let billing = try #require(accessLine(proxy, "apps-billing"))
    #expect(billing["app"] as? String == "billing")
    #expect(billing["status"] as? Int == 200)
    let refused = try #require(accessLine(proxy, "apps-none"))
    #expect(refused["app"] == nil)
    #expect(refused["error"] as? String == "proxy_auth_required")
    #expect(refused["status"] as? Int == 407)
    #expect(accessLine(proxy, "apps-unknown")?["error"] as? String == "proxy_auth_required")

    #expect(metricsText(proxy).contains(#"authproxy_app_requests_total{app="billing",status_class="2xx"} 1"#))
    // No key reaches the access log or the metrics.
    let log = try String(contentsOfFile: proxy.accessLogPath, encoding: .utf8)
    for secret in [Self.billingKey, "k-not-an-app"] {
      #expect(!log.contains(secret))
      #expect(!metricsText(proxy).contains(secret))
      #expect(!proxy.logs.all.joined().contains(secret))
    }
  }

  @Test func eachAppReachesOnlyItsRoutesAndRefusalsAreLoggedCountedAndAlerted() throws {
    let proxy = try ProxyHarness(flags: ["apps-file": Self.writeApps(Self.twoApps), "alert-route-denied-threshold": "2"])
    defer { proxy.stop() }

    #expect(try proxy.get("/api/v1/products?limit=1", headers: bearer(Self.reportsKey)).status == 200)
    let denied = try proxy.get("/api/v1/products", headers: bearer(Self.billingKey) + [("X-Request-ID", "route-billing")])
    #expect(denied.status == 403)
    #expect(denied.text.contains(#""code":"route_denied""#))
    #expect(denied.text.contains("GET /api/v1/products is not allowed by the routes of app billing in --apps-file"))
    // Normalisation does not open a way around a rule.
    let sneaky = try proxy.get("/api/v1/echo/../products", headers: bearer(Self.billingKey))
    #expect(sneaky.status == 403)
    let line = try #require(accessLine(proxy, "route-billing"))
    #expect(line["error"] as? String == "route_denied")
    #expect(line["app"] as? String == "billing")
    #expect(line["upstream_status"] is NSNull)

    // Refused before the routes are looked at (an auth path): the line still names the app.
    #expect(try proxy.get("/auth/logout", headers: bearer(Self.reportsKey) + [("X-Request-ID", "auth-reports")]).status == 403)
    #expect(accessLine(proxy, "auth-reports")?["app"] as? String == "reports")
    #expect(eventually { metricsText(proxy).contains(#"authproxy_route_denied_total{app="billing"} 2"#) })
    #expect(metricsText(proxy).contains(#"authproxy_app_requests_total{app="reports",status_class="2xx"} 1"#))
    #expect(eventually { proxy.logs.all.contains { $0.contains("authproxy alert route_denied") && $0.contains("Top apps: billing (2)") } })
    #expect(eventually { metricsText(proxy).contains(#"authproxy_alerts_total{rule="route_denied"} 1"#) })
  }

  @Test func allowRouteAppliesToEveryoneWithOrWithoutAnAppsFile() throws {
    let proxy = try ProxyHarness(flags: ["allow-route": "GET /api/v1/echo*, GET /api/v1/products"])
    defer { proxy.stop() }
    let echo = try proxy.get("/api/v1/echo/x?x=1", headers: [("X-Request-ID", "global-ok")])
    #expect(echo.status == 200)
    // Matched after normalisation: allowed, and forwarded byte for byte (the API's own 404).
    let encoded = try proxy.get("/api/v1/%65cho")
    #expect(encoded.status != 403)
    #expect(!encoded.text.contains("route_denied"))
    let orders = try request(
      port: proxy.port, method: "POST", target: "/api/v1/orders", headers: [("X-Request-ID", "global-denied")], body: Array("{}".utf8))
    #expect(orders.status == 403)
    #expect(orders.text.contains("POST /api/v1/orders is not allowed by --allow-route"))
    let line = try #require(accessLine(proxy, "global-denied"))
    #expect(line["error"] as? String == "route_denied")
    #expect(line["app"] == nil, "no apps file: no app field")
    #expect(accessLine(proxy, "global-ok")?["app"] == nil)
    #expect(eventually { metricsText(proxy).contains(#"authproxy_route_denied_total{app=""} 1"#) })

    // With an apps file, --allow-route still binds apps whose own routes would allow the call.
    let both = try ProxyHarness(flags: ["apps-file": Self.writeApps(Self.twoApps), "allow-route": "GET /api/v1/*"])
    defer { both.stop() }
    let order = try request(
      port: both.port, method: "POST", target: "/api/v1/orders", headers: bearer(Self.billingKey), body: Array("{}".utf8))
    #expect(order.status == 403)
    #expect(order.text.contains("not allowed by --allow-route"))
  }

  @Test func aUnixSocketListenerKnowsAppsByUid() throws {
    let directory = temporaryDirectory("authproxy-unix")
    let socketPath = directory + "/api.sock"
    // A socket file left behind by a proxy that is gone is removed at start.
    let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in socketPath.utf8.enumerated() { raw[i] = b } }
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    #expect(bound == 0)
    close(stale)

    let uid = getuid()
    let apps = Self.writeApps(#"{"apps":[{"name":"local","uid":\#(uid),"routes":["GET /api/v1/echo*"]}]}"#)
    let proxy = try ProxyHarness(workers: 2, flags: ["listen": "unix:" + socketPath, "listen-mode": "0600", "apps-file": apps])
    var info = stat()
    #expect(lstat(socketPath, &info) == 0)
    #expect(info.st_mode & S_IFMT == S_IFSOCK)
    #expect(info.st_mode & 0o777 == 0o600)

    // Several connections, so that both workers' descriptors are exercised.
    for n in 0..<6 {
      let connection = try RawConnection(unixPath: socketPath)
      try connection.send(requestBytes(method: "GET", target: "/api/v1/echo", headers: [("X-Request-ID", "unix-\(n)")]))
      #expect(try connection.readResponse().status == 200)
    }
    let line = try #require(accessLine(proxy, "unix-0"))
    #expect(line["client"] as? String == "unix:uid=\(uid)")
    #expect(line["app"] as? String == "local")
    let denied = try RawConnection(unixPath: socketPath)
    try denied.send(requestBytes(method: "GET", target: "/api/v1/products"))
    #expect(try denied.readResponse().status == 403)
    proxy.stop()
    #expect(access(socketPath, F_OK) != 0, "the socket file is removed at exit")
  }

  @Test func aUnixListenerNeverDeletesWhatIsNotASocket() throws {
    let directory = temporaryDirectory("authproxy-unix")
    let path = directory + "/api.sock"
    #expect(FileManager.default.createFile(atPath: path, contents: Data("keep me".utf8)))
    do {
      _ = try ProxyHarness(flags: ["listen": "unix:" + path])
      Issue.record("started over a regular file")
    } catch let error as StartupError {
      #expect(error.exitCode == 64)
      #expect(error.description.contains("is not a socket"))
    }
    #expect(try String(contentsOfFile: path, encoding: .utf8) == "keep me")
  }

  @Test func theAppsFileIsReadAgainOnChangeAndOnRequestAndABadOneKeepsTheOld() throws {
    let directory = temporaryDirectory("authproxy-apps")
    let only = #"{"apps":[{"name":"billing","key_sha256":"\#(Self.sha256(Self.billingKey))"}]}"#
    let path = Self.writeApps(only, in: directory)
    let proxy = try ProxyHarness(flags: ["apps-file": path])
    defer { proxy.stop() }
    #expect(try proxy.get("/api/v1/echo", headers: bearer(Self.billingKey)).status == 200)
    #expect(try proxy.get("/api/v1/echo", headers: bearer(Self.reportsKey)).status == 407)

    // A change on disk: the new app is admitted once the watcher has read the file.
    _ = Self.writeApps(Self.twoApps, in: directory)
    #expect(eventually(timeout: 20) { (try? proxy.get("/api/v1/products", headers: bearer(Self.reportsKey)).status) == 200 })
    #expect(proxy.logs.all.contains { $0.contains("apps file read (the apps file changed): 2 apps (billing, reports)") })

    // A bad file: logged, and the old table stays.
    _ = Self.writeApps(#"{"apps":[{"name":"billing","key_sha256":"zz"}]}"#, in: directory)
    #expect(
      eventually(timeout: 20) {
        proxy.logs.all.contains { $0.contains("cannot use the new apps file") && $0.contains("keeping the previous apps") }
      })
    #expect(proxy.logs.all.contains { $0.contains("app billing: key_sha256 must be 64 hex digits") })
    #expect(try proxy.get("/api/v1/products", headers: bearer(Self.reportsKey)).status == 200)

    // Fixed again and read on request (what SIGHUP does), without waiting for the watcher.
    _ = Self.writeApps(only, in: directory)
    proxy.runtime.reloadApps()
    #expect(eventually(timeout: 20) { (try? proxy.get("/api/v1/products", headers: bearer(Self.reportsKey)).status) == 407 })
  }

  @Test func aBadAppsFileStopsServeWithExit64NamingTheAppAndField() throws {
    let directory = temporaryDirectory("authproxy-apps")
    let bad = Self.writeApps(#"{"apps":[{"name":"billing","key_sha256":"abc","routes":["GET nope"]}]}"#, in: directory)
    let run = try runBinary(["serve", "--upstream", "https://127.0.0.1:9", "--apps-file", bad])
    #expect(run.status == 64)
    #expect(run.stderr.contains("--apps-file \(bad)"))
    #expect(run.stderr.contains("app billing: key_sha256 must be 64 hex digits"))
    #expect(run.stderr.contains("app billing: route 'GET nope': the path pattern must start with /"))

    let open = Self.writeApps(Self.twoApps, in: temporaryDirectory("authproxy-apps"), mode: 0o644)
    let loose = try runBinary(["serve", "--upstream", "https://127.0.0.1:9", "--apps-file", open])
    #expect(loose.status == 64)
    #expect(loose.stderr.contains("chmod 600"))
  }

  @Test func sighupReadsTheAppsFileAgainInTheBinary() throws {
    let directory = temporaryDirectory("authproxy-apps")
    let only = #"{"apps":[{"name":"billing","key_sha256":"\#(Self.sha256(Self.billingKey))"}]}"#
    let path = Self.writeApps(only, in: directory)
    let sandbox = try SandboxAPI.start(pkiDirectory: directory + "/pki")
    defer { sandbox.stop() }
    let user = SandboxAPI.demoUsers[0]
    let port = freePort()
    let proxy = try ProxyProcess(
      [
        "serve", "--upstream", sandbox.baseURL, "--ca-file", sandbox.caPath, "--listen", "127.0.0.1:\(port)",
        "--admin-listen", "127.0.0.1:\(freePort())", "--apps-file", path, "--access-log", directory + "/access.log", "--workers", "1",
      ],
      environment: ["API_USERNAME": user.username, "API_PASSWORD": user.password])
    defer { _ = proxy.stop() }
    #expect(eventually(timeout: 20) { (try? request(port: port, target: "/api/v1/echo", headers: bearer(Self.billingKey)).status) == 200 })
    // Same size and mtime second: only the SIGHUP (not the 2 s watcher) can be what reads it at once.
    _ = Self.writeApps(Self.twoApps, in: directory)
    kill(proxy.pid, SIGHUP)
    #expect(
      eventually(timeout: 10) { (try? request(port: port, target: "/api/v1/products", headers: bearer(Self.reportsKey)).status) == 200 })
    #expect(proxy.stop() == 0)
    let stderr = proxy.errorOutput
    #expect(stderr.contains("apps file read (SIGHUP): 2 apps (billing, reports)"))
    #expect(!stderr.contains(Self.billingKey) && !stderr.contains(Self.reportsKey))
  }
}

extension AppsTests {
  /// Issue 21, point 5 (the routes' share): two apps with different rules hammer one proxy at
  /// once, each also trying the other's routes. Every call gets its own app's verdict, none is
  /// lost or attributed to the other app, and the counts in the log and the metrics add up.
  @Test func twoAppsSharingOneProxyGetOnlyTheirOwnRoutesUnderLoad() throws {
    let proxy = try ProxyHarness(workers: 2, flags: ["apps-file": Self.writeApps(Self.twoApps), "alert-route-denied-threshold": "1000"])
    defer { proxy.stop() }
    struct Plan: Sendable {
      let app: String
      let key: String
      let allowed: String
      let denied: String
    }
    let plans = [
      Plan(app: "billing", key: Self.billingKey, allowed: "/api/v1/echo", denied: "/api/v1/products"),
      Plan(app: "reports", key: Self.reportsKey, allowed: "/api/v1/products?limit=1", denied: "/api/v1/echo"),
    ]
    let rounds = 40
    let port = proxy.port
    let outcomes = Mutex<[String: [Int]]>([:])
    DispatchQueue.concurrentPerform(iterations: plans.count * 2) { index in
      let plan = plans[index % plans.count]
      var statuses: [Int] = []
      for round in 0..<rounds {
        let target = round % 2 == 0 ? plan.allowed : plan.denied
        let status = (try? request(port: port, target: target, headers: [("Proxy-Authorization", "Bearer \(plan.key)")]).status) ?? -1
        statuses.append(status)
      }
      outcomes.withLock { $0["\(plan.app)-\(index)"] = statuses }
    }
    let all = outcomes.withLock { $0 }
    #expect(all.count == plans.count * 2)
    for (worker, statuses) in all {
      #expect(statuses.enumerated().allSatisfy { $0.element == ($0.offset % 2 == 0 ? 200 : 403) }, "\(worker): \(statuses)")
    }
    let perApp = rounds / 2 * 2  // two threads per app, half their calls each way
    let lines = proxy.accessLog(count: plans.count * 2 * rounds)
    #expect(lines.count == plans.count * 2 * rounds)
    for plan in plans {
      let mine = lines.filter { $0["app"] as? String == plan.app }
      #expect(mine.count == perApp * 2)
      #expect(mine.filter { $0["error"] as? String == "route_denied" }.count == perApp)
      #expect(mine.filter { $0["status"] as? Int == 200 }.count == perApp)
      #expect(
        eventually {
          let text = (try? proxy.admin("/metrics").text) ?? ""
          return text.contains(#"authproxy_route_denied_total{app="\#(plan.app)"} \#(perApp)"#)
            && text.contains(#"authproxy_app_requests_total{app="\#(plan.app)",status_class="2xx"} \#(perApp)"#)
            && text.contains(#"authproxy_app_requests_total{app="\#(plan.app)",status_class="4xx"} \#(perApp)"#)
        })
    }
  }
}

extension AppsTests {
  /// Issue 21, point 5 (the limits' share): a greedy app with `max_concurrency` 2 floods one
  /// proxy (two workers) with requests the API holds open, while a second app with its own
  /// limit of 2 calls too. The greedy app never has more than 2 at the API, the other app gets
  /// through at once all the same, and every queued request is answered once a slot frees, in
  /// its turn, none refused and none lost.
  @Test func twoAppsWithTheirOwnLimitsShareOneProxyWithoutExceedingOrStarvingEachOther() throws {
    let apps = """
      {"apps":[
        {"name":"greedy","key_sha256":"\(Self.sha256(Self.billingKey))","max_concurrency":2},
        {"name":"steady","key_sha256":"\(Self.sha256(Self.reportsKey))","max_concurrency":2}
      ]}
      """
    let proxy = try ProxyHarness(workers: 2, flags: ["apps-file": Self.writeApps(apps), "timeout": "60"])
    defer { proxy.stop() }
    let port = proxy.port
    #expect(try request(port: port, target: "/api/v1/echo?warm-up", headers: bearer(Self.reportsKey)).status == 200)
    let before = proxy.sandbox.counters.apiRequests
    let statuses = Mutex<[String: [Int]]>([:])
    let held = "/api/v1/slow?ms=600000"
    func flood(_ app: String, key: String, count: Int) -> [Thread] {
      (0..<count).map { _ in
        let thread = Thread {
          let status = (try? RawConnection(port: port, timeoutSeconds: 60)).flatMap { connection -> Int? in
            try? connection.send(requestBytes(method: "GET", target: held, headers: [("Proxy-Authorization", "Bearer \(key)")]))
            return try? connection.readResponse().status
          }
          statuses.withLock { $0[app, default: []].append(status ?? -1) }
        }
        thread.start()
        return thread
      }
    }
    _ = flood("greedy", key: Self.billingKey, count: 6)
    #expect(eventually(timeout: 20) { proxy.sandbox.counters.apiRequests == before + 2 }, "the greedy app's first two reach the API")
    #expect(eventually(timeout: 20) { metricsText(proxy).contains("authproxy_admission_queued 4") }, "its other four wait in the proxy")
    _ = flood("steady", key: Self.reportsKey, count: 2)
    #expect(eventually(timeout: 20) { proxy.sandbox.counters.apiRequests >= before + 4 }, "the other app is not starved")
    #expect(proxy.sandbox.counters.apiRequests == before + 4, "the greedy app still has only two at the API")
    // Let the API answer, again and again, until every queued request had its turn.
    #expect(
      eventually(timeout: 30) {
        proxy.sandbox.wakeSleepers()
        return statuses.withLock { $0.values.map(\.count).reduce(0, +) } == 8
      })
    let all = statuses.withLock { $0 }
    #expect(all["greedy"] == Array(repeating: 200, count: 6))
    #expect(all["steady"] == Array(repeating: 200, count: 2))
    #expect(proxy.sandbox.counters.apiRequests == before + 8, "each request reached the API exactly once")
    let lines = proxy.accessLog(count: 9).filter { ($0["path"] as? String) == "/api/v1/slow" }
    #expect(lines.filter { $0["app"] as? String == "greedy" && $0["status"] as? Int == 200 }.count == 6)
    #expect(lines.filter { $0["app"] as? String == "steady" && $0["status"] as? Int == 200 }.count == 2)
  }
}

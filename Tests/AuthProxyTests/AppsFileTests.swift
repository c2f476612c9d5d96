import Foundation
import Testing

@testable import AuthProxy

private func rule(_ text: String) throws -> RouteRule { try RouteRule.parse(text).get() }

private func allows(_ text: String, _ method: String, _ path: String) throws -> Bool {
  try rule(text).matches(method: method, normalizedPath: RequestPolicy.normalized(path.utf8))
}

private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

private func parse(_ json: String) -> Result<AppTable, AppsFileError> { AppTable.parse(Array(json.utf8), path: "/etc/apps.json") }

private func problems(_ json: String) -> [String] {
  if case .failure(let error) = parse(json) { return error.problems }
  return []
}

private let billingKey = "billing-key-0123456789abcdef"
private let reportsKey = "reports-key-fedcba9876543210"

@Suite struct RouteRuleTests {
  @Test func exactRulesMatchOnlyTheirMethodAndPath() throws {
    #expect(try allows("POST /api/v1/orders", "POST", "/api/v1/orders"))
    #expect(try !allows("POST /api/v1/orders", "GET", "/api/v1/orders"))
    #expect(try !allows("POST /api/v1/orders", "POST", "/api/v1/orders/1"))
    #expect(try !allows("POST /api/v1/orders", "POST", "/api/v1/order"))
  }

  @Test func aStarMatchesAnyRestOfThePath() throws {
    #expect(try allows("GET /api/v1/products*", "GET", "/api/v1/products"))
    #expect(try allows("GET /api/v1/products*", "GET", "/api/v1/products/42"))
    #expect(try allows("GET /api/v1/products*", "GET", "/api/v1/products-archive"))
    #expect(try !allows("GET /api/v1/products*", "GET", "/api/v1/orders"))
    // "/x/*": below /x, and /x itself, but not /xy.
    #expect(try allows("GET /api/v1/products/*", "GET", "/api/v1/products/42"))
    #expect(try allows("GET /api/v1/products/*", "GET", "/api/v1/products"))
    #expect(try !allows("GET /api/v1/products/*", "GET", "/api/v1/productsx"))
    #expect(try allows("ANY /*", "DELETE", "/anything/at/all"))
  }

  @Test func anyMatchesEveryMethod() throws {
    for method in ["GET", "POST", "DELETE", "PATCH", "PROPFIND"] { #expect(try allows("ANY /api/v1/x", method, "/api/v1/x")) }
  }

  @Test func pathsAreComparedAfterTheAuthPathsNormalisation() throws {
    // Percent-encoding, dot segments, doubled slashes, case and a trailing slash do not escape a rule.
    for path in ["/api/v1/%6Frders", "/api/v1/x/../orders", "//api//v1/./orders/", "/API/V1/ORDERS", "/api/v1/orders;x=1"] {
      #expect(try allows("POST /api/v1/orders", "POST", path), "\(path)")
    }
    #expect(try !allows("GET /api/v1/products*", "GET", "/api/v1/products/../../v1/orders"))
  }

  @Test(arguments: [
    ("/api/v1/x", "write a route as METHOD /path"), ("GET api/v1", "must start with /"), ("GET /a*b", "may only end"),
    ("get /x", "upper case"), ("GET /x?y=1", "without ? or #"), ("G(T /x", "not an HTTP method"), ("GET /x extra", "METHOD /path"),
  ])
  func badRulesSayWhy(text: String, reason: String) {
    guard case .failure(let error) = RouteRule.parse(text) else {
      Issue.record("\(text) parsed")
      return
    }
    #expect(error.description.contains(reason), "\(error.description)")
    #expect(error.description.contains(text))
  }

  @Test func aListReportsEveryBadRuleAndNamesItsOrigin() throws {
    guard case .failure(let errors) = RouteSet.parseList("GET /ok, nope, POST x", origin: "--allow-route") else {
      Issue.record("parsed")
      return
    }
    #expect(errors.errors.map(\.rule) == ["nope", "POST x"])
    let set = try RouteSet.parseList("GET /api/v1/products*, POST /api/v1/orders", origin: "--allow-route").get()
    #expect(set.rules.count == 2)
    #expect(set.refusal(method: "DELETE", path: "/api/v1/orders/1").message == "DELETE /api/v1/orders/1 is not allowed by --allow-route")
    #expect(set.refusal(method: "DELETE", path: "/x").status == 403)
    #expect(set.refusal(method: "DELETE", path: "/x").code == "route_denied")
  }
}

@Suite struct AppsFileTests {
  let valid = """
    {"apps":[
      {"name":"billing","key_sha256":"\(hex(SHA256Hasher.hash(Array(billingKey.utf8))))","uid":1001,
       "routes":["GET /api/v1/products*","POST /api/v1/orders"],"rate_limit":"5/s","burst":10,"max_concurrency":4},
      {"name":"reports","key_sha256":"\(hex(SHA256Hasher.hash(Array(reportsKey.utf8))).uppercased())","rate_limit":"120/m"}
    ]}
    """

  @Test func aValidFileCarriesEveryField() throws {
    let table = try parse(valid).get()
    #expect(table.apps.map(\.name) == ["billing", "reports"])
    let billing = table.apps[0]
    #expect(billing.uid == 1001)
    #expect(billing.routes?.rules.map(\.text) == ["GET /api/v1/products*", "POST /api/v1/orders"])
    #expect(billing.routes?.origin == "the routes of app billing in --apps-file")
    #expect(billing.ratePerSecond == 5)
    #expect(billing.burst == 10)
    #expect(billing.maxConcurrency == 4)
    #expect(table.apps[1].ratePerSecond == 2)
    #expect(table.apps[1].routes == nil && table.apps[1].burst == nil && table.apps[1].maxConcurrency == nil)
  }

  @Test func rates() {
    #expect(AppTable.parseRate("5/s") == 5)
    #expect(AppTable.parseRate("0.5/s") == 0.5)
    #expect(AppTable.parseRate("30/m") == 0.5)
    for bad in ["5", "5/h", "-1/s", "0/s", "x/s", "5/s/s", "inf/s", "nan/s"] { #expect(AppTable.parseRate(bad) == nil, "\(bad)") }
  }

  @Test func everyProblemNamesItsAppAndField() {
    let found = problems(
      """
      {"apps":[
        {"name":"a","key_sha256":"abc","routes":["get /x"],"rate_limit":"fast","burst":0,"max_concurrency":"4","colour":"red"},
        {"name":"b","uid":-1},
        {"name":"c"},
        {"key_sha256":"00"}
      ],"extra":1}
      """)
    let text = found.joined(separator: "\n")
    #expect(text.contains("unknown member 'extra'"))
    #expect(text.contains("app a: key_sha256 must be 64 hex digits"))
    #expect(text.contains("app a: route 'get /x': methods are upper case"))
    #expect(text.contains("app a: rate_limit 'fast' is not a rate"))
    #expect(text.contains("app a: burst must be a whole number"))
    #expect(text.contains("app a: max_concurrency must be a whole number"))
    #expect(text.contains("app a: unknown field 'colour'"))
    #expect(text.contains("app b: uid must be a whole number"))
    #expect(text.contains("app c: give key_sha256 or uid"))
    #expect(text.contains("apps[3]: \"name\" is required"))
  }

  @Test func duplicatesAreRefused() {
    let key = hex(SHA256Hasher.hash(Array(billingKey.utf8)))
    let text = problems(
      """
      {"apps":[{"name":"a","key_sha256":"\(key)","uid":7},{"name":"a","uid":8},{"name":"b","key_sha256":"\(key.uppercased())"},{"name":"c","uid":7}]}
      """
    ).joined(separator: "\n")
    #expect(text.contains("app a: the name is used twice"))
    #expect(text.contains("app b: key_sha256 is the same as app a's"))
    #expect(text.contains("app c: uid 7 is app a's too"))
  }

  @Test func notJSONAndNotAnObjectAreSaidPlainly() throws {
    #expect(problems("{").first?.contains("is not valid JSON") == true)
    #expect(problems("[]").first?.contains("is not a JSON object") == true)
    #expect(problems(#"{"apps":{}}"#).first?.contains("must be an array") == true)
    #expect(try parse(#"{"apps":[]}"#).get().apps.isEmpty)
  }

  @Test func theFileModeRuleIsTheCredentialFilesOne() throws {
    let path = NSTemporaryDirectory() + "apps-\(UUID().uuidString.prefix(8)).json"
    defer { unlink(path) }
    #expect(FileManager.default.createFile(atPath: path, contents: Data(valid.utf8)))
    #expect(chmod(path, 0o644) == 0)
    guard case .failure(let error) = AppTable.load(path: path) else {
      Issue.record("a world-readable apps file was accepted")
      return
    }
    #expect(error.description.contains("chmod 600"))
    #expect(error.description.contains("--apps-file"))
    #expect(chmod(path, 0o600) == 0)
    #expect(try AppTable.load(path: path).get().apps.count == 2)
  }
}

@Suite struct AppAccessTests {
  let table: AppTable = {
    let json = """
      {"apps":[
        {"name":"billing","key_sha256":"\(hex(SHA256Hasher.hash(Array(billingKey.utf8))))","routes":["GET /api/v1/products*","POST /api/v1/orders"]},
        {"name":"reports","key_sha256":"\(hex(SHA256Hasher.hash(Array(reportsKey.utf8))))","uid":1001}
      ]}
      """
    return try! AppTable.parse(Array(json.utf8), path: "apps.json").get()
  }()

  @Test func appsAreKnownByTheirKeyOrTheirUid() {
    #expect(table.identify(proxyAuthorization: "Bearer \(billingKey)", peerUID: nil)?.name == "billing")
    #expect(table.identify(proxyAuthorization: "bearer   \(reportsKey) ", peerUID: nil)?.name == "reports")
    #expect(table.identify(proxyAuthorization: nil, peerUID: 1001)?.name == "reports")
    #expect(table.identify(proxyAuthorization: nil, peerUID: 1002) == nil)
    #expect(table.identify(proxyAuthorization: nil, peerUID: nil) == nil)
    #expect(table.identify(proxyAuthorization: "Bearer wrong", peerUID: nil) == nil)
    #expect(table.identify(proxyAuthorization: "Basic \(billingKey)", peerUID: nil) == nil)
    // A wrong key is not rescued by a known uid.
    #expect(table.identify(proxyAuthorization: "Bearer wrong", peerUID: 1001) == nil)
  }

  @Test func unknownCallersGet407WithAChallengeAndNoKeyInTheAnswer() {
    let access = AppAccess(table: table, global: nil)
    guard case .refused(let error, let app) = access.check(method: "GET", target: "/api/v1/x", proxyAuthorization: nil, peerUID: nil)
    else {
      Issue.record("allowed")
      return
    }
    #expect(error.status == 407 && error.code == "proxy_auth_required" && app == nil)
    #expect(error.headers(requestID: "r").contains { $0.name == "Proxy-Authenticate" && $0.value == #"Bearer realm="authproxy""# })
    guard case .refused(let wrong, _) = access.check(method: "GET", target: "/x", proxyAuthorization: "Bearer secret-key-x", peerUID: nil)
    else {
      Issue.record("allowed")
      return
    }
    #expect(wrong.status == 407)
    #expect(!String(decoding: wrong.body(requestID: "r"), as: UTF8.self).contains("secret-key-x"))
  }

  @Test func theAppsRoutesAndTheGlobalOnesMustBothAllow() throws {
    let global = try RouteSet.parseList("GET /api/v1/*, POST /api/v1/orders", origin: "--allow-route").get()
    let access = AppAccess(table: table, global: global)
    let billing = "Bearer \(billingKey)"
    let reports = "Bearer \(reportsKey)"
    #expect(
      access.check(method: "GET", target: "/api/v1/products?page=2", proxyAuthorization: billing, peerUID: nil)
        == .allowed(app: table.apps[0]))
    guard
      case .refused(let own, let app) = access.check(method: "GET", target: "/api/v1/orders?x=1", proxyAuthorization: billing, peerUID: nil)
    else {
      Issue.record("allowed")
      return
    }
    #expect(app == "billing")
    #expect(own.message == "GET /api/v1/orders is not allowed by the routes of app billing in --apps-file")
    guard
      case .refused(let globalRefusal, let who) = access.check(
        method: "DELETE", target: "/api/v1/x", proxyAuthorization: reports, peerUID: nil)
    else {
      Issue.record("allowed")
      return
    }
    #expect(who == "reports")
    #expect(globalRefusal.message == "DELETE /api/v1/x is not allowed by --allow-route")
    #expect(
      access.check(method: "GET", target: "/api/v1/anything", proxyAuthorization: reports, peerUID: nil) == .allowed(app: table.apps[1]))
  }

  @Test func withoutAnAppsFileNobodyIsIdentified() throws {
    #expect(AppAccess(table: nil, global: nil).isInactive)
    let access = AppAccess(table: nil, global: try RouteSet.parseList("GET /api/*", origin: "--allow-route").get())
    #expect(access.check(method: "GET", target: "/api/v1/x", proxyAuthorization: "Bearer whatever", peerUID: nil) == .allowed(app: nil))
    guard case .refused(let error, nil) = access.check(method: "POST", target: "/api/v1/x", proxyAuthorization: nil, peerUID: nil) else {
      Issue.record("allowed")
      return
    }
    #expect(error.code == "route_denied")
  }

  @Test func constantTimeEqualityIsEquality() {
    #expect(AppTable.constantTimeEqual([1, 2, 3], [1, 2, 3]))
    #expect(!AppTable.constantTimeEqual([1, 2, 3], [1, 2, 4]))
    #expect(!AppTable.constantTimeEqual([1, 2], [1, 2, 3]))
  }
}

@Suite struct AppsConfigTests {
  private func load(_ flags: [String: String], environment: [String: String] = [:]) -> Result<ServeConfig, ConfigErrors> {
    ServeConfig.load(flags: ["upstream": "https://api.example.com"].merging(flags) { $1 }, environment: environment)
  }

  @Test func unixListenAndMode() throws {
    let config = try load(["listen": "unix:/run/authproxy/api.sock", "listen-mode": "0600"]).get()
    #expect(config.listenUnix == "/run/authproxy/api.sock")
    #expect(config.listenMode == 0o600)
    #expect(try load([:]).get().listenMode == 0o660)
    #expect(try load([:]).get().listenUnix == nil)
  }

  @Test func badValuesNameTheirFlag() {
    guard case .failure(let errors) = load(["listen": "unix:relative.sock", "listen-mode": "0999", "allow-route": "GET x"]) else {
      Issue.record("accepted")
      return
    }
    let text = errors.description
    #expect(text.contains("--listen: 'unix:relative.sock' needs an absolute socket path"))
    #expect(text.contains("--listen-mode: '0999' is not an octal file mode"))
    #expect(text.contains("--allow-route: 'GET x': the path pattern must start with /"))
    guard case .failure(let missing) = load(["apps-file": "/nonexistent/apps.json"]) else {
      Issue.record("accepted")
      return
    }
    #expect(missing.description.contains("--apps-file /nonexistent/apps.json"))
    #expect(missing.description.contains("does not exist"))
    guard case .failure(let threshold) = load(["alert-route-denied-threshold": "0"]) else {
      Issue.record("accepted")
      return
    }
    #expect(threshold.description.contains("--alert-route-denied-threshold"))
  }

  @Test func variablesWorkLikeFlags() throws {
    let config = try load([:], environment: ["AUTHPROXY_ALLOW_ROUTE": "GET /api/v1/*", "AUTHPROXY_ALERT_ROUTE_DENIED_THRESHOLD": "3"]).get()
    #expect(config.allowRoutes?.rules.map(\.text) == ["GET /api/v1/*"])
    #expect(config.alerts.thresholds.routeDenied == 3)
  }
}

@Suite struct RouteDeniedAlertTests {
  @Test func routeDenialsFireOnceAtTheThresholdNamingTheApps() {
    var thresholds = SecurityMonitor.Thresholds()
    thresholds.routeDenied = 3
    var monitor = SecurityMonitor(window: 60, thresholds: thresholds, host: "h")
    #expect(monitor.record(.routeDenied(app: "billing", method: "POST", path: "/api/v1/admin?token=x"), now: 1) == nil)
    #expect(monitor.record(.routeDenied(app: "billing", method: "POST", path: "/api/v1/admin"), now: 2) == nil)
    let alert = monitor.record(.routeDenied(app: "reports", method: "DELETE", path: "/api/v1/x"), now: 3)
    #expect(alert?.rule == .routeDenied)
    #expect(alert?.topApps.first == SecurityAlert.PathCount(path: "billing", count: 2))
    #expect(alert?.message.contains("Top apps: billing (2), reports (1)") == true)
    #expect(alert?.jsonBody().contains(#""top_apps":[{"app":"billing","count":2}"#) == true)
    #expect(alert?.message.contains("token=x") == false)
    #expect(monitor.record(.routeDenied(app: nil, method: "GET", path: "/x"), now: 4) == nil, "once per window")
  }

  @Test func upstreamRefusalAlertsNameTheApps() {
    var monitor = SecurityMonitor(window: 60, thresholds: SecurityMonitor.Thresholds(failedAuth: 2), host: "h")
    _ = monitor.record(.upstreamAnswer(status: 401, path: "/api/v1/x", app: "billing"), now: 1)
    let alert = monitor.record(.upstreamAnswer(status: 401, path: "/api/v1/x", app: "billing"), now: 2)
    #expect(alert?.topApps == [SecurityAlert.PathCount(path: "billing", count: 2)])
  }

  @Test func theAccessLogLineCarriesTheAppOnlyWhenKnown() {
    var entry = AccessLogEntry(
      ts: 0, requestID: "r", client: "unix:uid=1001", method: "GET", path: "/api/v1/x", status: 200, upstreamStatus: 200,
      durationMs: 1, upstreamMs: 1, bytesIn: 0, bytesOut: 2, attempts: 1, reauth: false, error: nil)
    #expect(!entry.jsonLine().contains(#""app""#))
    entry.app = "billing"
    #expect(entry.jsonLine().contains(#""client":"unix:uid=1001","app":"billing","method""#))
  }
}

@Suite struct RouteDeniedScanTests {
  @Test func monitorCountsRouteDeniedLinesByField() {
    var scan = AccessLogScan(window: 3600, now: RFC3339.parse("2026-01-01T12:00:00Z")!)
    let denied =
      #"{"ts":"2026-01-01T11:59:00.000Z","request_id":"a","client":"127.0.0.1","app":"billing","method":"POST","path":"/api/v1/orders","status":403,"upstream_status":null,"error":"route_denied"}"#
    let other =
      #"{"ts":"2026-01-01T11:59:00.000Z","request_id":"route_denied","client":"127.0.0.1","method":"GET","path":"/route_denied","status":200,"upstream_status":200,"error":null}"#
    for line in [denied, denied, other] { scan.consume(line: Array(line.utf8)) }
    #expect(scan.routeDenied == 2, "counted by the error field, never by text")
    var thresholds = SecurityMonitor.Thresholds()
    thresholds.routeDenied = 2
    let alert = scan.alerts(thresholds: thresholds, host: "h").first { $0.rule == .routeDenied }
    #expect(alert?.count == 2)
    #expect(alert?.topApps == [SecurityAlert.PathCount(path: "billing", count: 2)])
    #expect(alert?.topPaths == [SecurityAlert.PathCount(path: "POST /api/v1/orders", count: 2)])
    #expect(scan.report(thresholds: thresholds).contains("route_denied      refused routes: 2"))
  }
}

import Foundation
import Testing

@testable import AuthProxy

// MARK: - Builders

private let upstreamFlag = ["upstream": "https://api.example.com"]

private func load(_ flags: [String: String] = upstreamFlag, environment: [String: String] = [:]) -> Result<
  ServeConfig, ConfigErrors
> {
  ServeConfig.load(flags: flags, environment: environment)
}

private func loaded(_ flags: [String: String] = upstreamFlag, environment: [String: String] = [:]) throws
  -> ServeConfig
{
  try load(flags, environment: environment).get()
}

/// The problems of a configuration that must be refused (empty when it was accepted).
private func problems(_ flags: [String: String], environment: [String: String] = [:]) -> [String] {
  guard case .failure(let errors) = load(flags, environment: environment) else { return [] }
  return errors.problems
}

private func merging(_ extra: [String: String]) -> [String: String] {
  upstreamFlag.merging(extra) { _, new in new }
}

// MARK: - Specification

@Suite struct ServeConfigTests {

  // MARK: Defaults

  @Test func defaultsWhenOnlyTheUpstreamIsGiven() throws {
    let config = try loaded()
    #expect(config.upstream == (try UpstreamURL.parse("https://api.example.com").get()))
    #expect(config.listen == HostPort(host: "127.0.0.1", port: 8080))
    #expect(config.adminListen == HostPort(host: "127.0.0.1", port: 9901))
    #expect(config.tls.caFile == nil)
    #expect(config.credentials == .env)
    #expect(config.userAgent == "authproxy/\(AuthProxyVersion.current)")
    #expect(config.connectTimeout == 30)
    #expect(config.timeout == 60)
    #expect(config.refreshBefore == 300)
    #expect(config.accessLog == "-")
    #expect(config.workers == ServeConfig.defaultWorkers)
    #expect(config.maxBody == 10 * 1024 * 1024)
    #expect(config.drainTimeout == 20)
    #expect(config.authPaths == ["/auth/login", "/auth/refresh", "/auth/logout"])
    #expect(config.logoutOnExit == false)
  }

  @Test func everyFlagHasAnAUTHPROXYVariableInUpperSnakeCase() {
    for flag in ServeConfig.flags {
      #expect(flag.environmentVariable == "AUTHPROXY_" + flag.name.uppercased().map { $0 == "-" ? "_" : String($0) }.joined())
    }
    let connectTimeout = ServeConfig.flags.first { $0.name == "connect-timeout" }
    #expect(connectTimeout?.environmentVariable == "AUTHPROXY_CONNECT_TIMEOUT")
  }

  // MARK: Precedence

  @Test func aFlagBeatsItsVariable() throws {
    let config = try loaded(
      merging(["timeout": "5s", "listen": "127.0.0.1:7000"]),
      environment: ["AUTHPROXY_TIMEOUT": "10s", "AUTHPROXY_LISTEN": "127.0.0.1:7001"])
    #expect(config.timeout == 5)
    #expect(config.listen.port == 7000)
  }

  @Test func theVariableBeatsTheDefault() throws {
    let config = try loaded(
      [:],
      environment: [
        "AUTHPROXY_UPSTREAM": "https://staging.example.com/v1", "AUTHPROXY_CONNECT_TIMEOUT": "500ms",
        "AUTHPROXY_MAX_BODY": "512KiB", "AUTHPROXY_WORKERS": "3", "AUTHPROXY_REFRESH_BEFORE": "5m",
        "AUTHPROXY_LOGIN_PATH": "/v2/login",
      ])
    #expect(config.upstream.host == "staging.example.com")
    #expect(config.upstream.basePath == "/v1")
    #expect(config.connectTimeout == 0.5)
    #expect(config.maxBody == 512 * 1024)
    #expect(config.workers == 3)
    #expect(config.refreshBefore == 300)
    #expect(config.loginPath == "/v2/login")
  }

  @Test func aGoodFlagHidesABadVariable() throws {
    let config = try loaded(merging(["timeout": "5s"]), environment: ["AUTHPROXY_TIMEOUT": "soon"])
    #expect(config.timeout == 5)
  }

  // MARK: Problems

  @Test func collectsEveryProblemAtOnce() {
    let found = problems(["upstream": "http://api.example.com", "timeout": "soon", "workers": "0"])
    #expect(found.count == 3)
    #expect(found.contains { $0.contains("--upstream") })
    #expect(found.contains { $0.contains("--timeout") && $0.contains("soon") })
    #expect(found.contains { $0.contains("--workers") && $0.contains("0") })
  }

  @Test func missingUpstreamIsAProblem() {
    let found = problems([:])
    #expect(found.count == 1)
    #expect(found.first?.contains("--upstream") == true)
  }

  @Test func emptyUpstreamIsAProblem() {
    #expect(problems(["upstream": ""]).contains { $0.contains("--upstream") })
  }

  @Test func aProblemFromAVariableNamesTheVariableAndTheFlag() {
    let found = problems(upstreamFlag, environment: ["AUTHPROXY_TIMEOUT": "abc"])
    #expect(found.count == 1)
    #expect(found.first?.contains("AUTHPROXY_TIMEOUT") == true)
    #expect(found.first?.contains("--timeout") == true)
  }

  @Test(arguments: ["connect-timeout", "timeout"])
  func zeroTimeoutsAreRefused(flag: String) {
    let found = problems(merging([flag: "0s"]))
    #expect(found.count == 1)
    #expect(found.first?.hasPrefix("--\(flag):") == true)
  }

  @Test(arguments: [
    ("listen", "8080"), ("admin-listen", "localhost"), ("connect-timeout", "-1s"), ("refresh-before", "soon"),
    ("drain-timeout", "20 s"), ("workers", "257"), ("workers", "many"), ("max-body", "10XB"), ("access-log", ""),
    ("user-agent", ""), ("user-agent", "bad\nagent"), ("credentials", "ldap"),
  ])
  func eachBadValueNamesItsFlag(flag: String, value: String) {
    let found = problems(merging([flag: value]))
    #expect(found.count == 1)
    #expect(found.first?.hasPrefix("--\(flag)") == true)
  }

  @Test func unreadableCAFileNamesTheFlag() {
    let found = problems(merging(["ca-file": "/nonexistent/authproxy-test/ca.pem"]))
    #expect(found.count == 1)
    #expect(found.first?.contains("--ca-file") == true)
    #expect(found.first?.contains("/nonexistent/authproxy-test/ca.pem") == true)
  }

  @Test func readableCAFileIsKept() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("authproxy-ca-\(UUID().uuidString).pem").path
    try "-----BEGIN CERTIFICATE-----\n".write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let config = try loaded(merging(["ca-file": path]))
    #expect(config.tls.caFile == path)
  }

  @Test(arguments: ["login-path", "refresh-path", "logout-path"])
  func authPathsMustStartWithASlash(flag: String) {
    let found = problems(merging([flag: "auth/elsewhere"]))
    #expect(found.count == 1)
    #expect(found.first?.contains("--\(flag)") == true)
  }

  @Test(arguments: [("true", true), ("1", true), ("yes", true), ("TRUE", true), ("false", false), ("0", false)])
  func logoutOnExitIsABoolean(text: String, value: Bool) throws {
    #expect(try loaded(merging(["logout-on-exit": text])).logoutOnExit == value)
    #expect(try loaded(environment: ["AUTHPROXY_LOGOUT_ON_EXIT": text]).logoutOnExit == value)
  }

  @Test func logoutOnExitRefusesOtherWords() {
    let found = problems(merging(["logout-on-exit": "maybe"]))
    #expect(found.count == 1)
    #expect(found.first?.contains("--logout-on-exit") == true)
  }

  @Test func customAuthPathsReplaceTheDefaults() throws {
    let config = try loaded(
      merging(["login-path": "/v2/session", "refresh-path": "/v2/session/refresh", "logout-path": "/v2/session/end"]))
    #expect(config.authPaths == ["/v2/session", "/v2/session/refresh", "/v2/session/end"])
  }
}

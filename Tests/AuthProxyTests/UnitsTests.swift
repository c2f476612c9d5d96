import Testing

@testable import AuthProxy

@Suite struct UnitsTests {

  // MARK: Durations

  @Test(arguments: [
    ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("45", 45.0), ("0s", 0.0), ("1.5s", 1.5),
  ])
  func parsesDurations(text: String, seconds: Double) {
    #expect(Units.duration(text) == seconds)
  }

  @Test(arguments: ["-1s", "+5", "+5s", "abc", "", "s", "ms", "10XB", "5 s", "1.5.s", "nan", "infs", "-500ms"])
  func refusesMalformedDurations(text: String) {
    #expect(Units.duration(text) == nil)
  }

  // MARK: Sizes

  @Test(arguments: [
    ("512KiB", 512 * 1024), ("10MiB", 10 * 1024 * 1024), ("1GiB", 1 << 30), ("100", 100), ("0", 0), ("2KB", 2000),
    ("64B", 64),
  ])
  func parsesSizes(text: String, bytes: Int) {
    #expect(Units.size(text) == bytes)
  }

  @Test(arguments: [
    "-1KiB", "-1", "abc", "", "KiB", "10XB", "1.5MiB", "10 MiB", "99999999999999999GiB", "+5", "+5MiB", "+0", "+1KB",
  ])
  func refusesMalformedSizes(text: String) {
    #expect(Units.size(text) == nil)
  }
}

@Suite struct HostPortTests {

  @Test func parsesIPv4HostAndPort() {
    #expect(HostPort.parse("127.0.0.1:8080") == HostPort(host: "127.0.0.1", port: 8080))
  }

  @Test func parsesNamedHost() {
    #expect(HostPort.parse("localhost:9901") == HostPort(host: "localhost", port: 9901))
  }

  @Test func parsesBracketedIPv6() {
    #expect(HostPort.parse("[::1]:8080") == HostPort(host: "::1", port: 8080))
  }

  @Test(arguments: [
    "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:http", "127.0.0.1:", "127.0.0.1", ":8080", "::1:8080", "[::1]",
    "[::1]8080", "[]:8080", "", "host:+80", "127.0.0.1:+8080", "[::1]:+80", "host:-0",
  ])
  func refusesBadHostPort(text: String) {
    #expect(HostPort.parse(text) == nil)
  }

  @Test func describesIPv6WithBrackets() {
    #expect(HostPort(host: "::1", port: 8080).description == "[::1]:8080")
    #expect(HostPort(host: "127.0.0.1", port: 8080).description == "127.0.0.1:8080")
  }

  @Test func knowsLoopbackAddresses() {
    #expect(HostPort(host: "127.0.0.1", port: 1).isLoopback)
    #expect(HostPort(host: "::1", port: 1).isLoopback)
    #expect(HostPort(host: "localhost", port: 1).isLoopback)
    #expect(!HostPort(host: "0.0.0.0", port: 1).isLoopback)
    #expect(!HostPort(host: "10.0.0.1", port: 1).isLoopback)
  }
}

@Suite struct UpstreamURLTests {

  @Test func acceptsHTTPSWithPortAndBasePath() throws {
    let url = try UpstreamURL.parse("https://api.example.com:8443/v2").get()
    #expect(url.origin == "https://api.example.com:8443")
    #expect(url.basePath == "/v2")
    #expect(url.host == "api.example.com")
    #expect(url.description == "https://api.example.com:8443/v2")
  }

  @Test func acceptsBareHTTPSOrigin() throws {
    let url = try UpstreamURL.parse("https://api.example.com").get()
    #expect(url.origin == "https://api.example.com")
    #expect(url.basePath == "")
    #expect(url.host == "api.example.com")
  }

  @Test(arguments: [
    ("https://api.example.com/", ""), ("https://api.example.com/v2/", "/v2"), ("https://api.example.com/v2///", "/v2"),
  ])
  func trimsTrailingSlashes(text: String, basePath: String) throws {
    #expect(try UpstreamURL.parse(text).get().basePath == basePath)
  }

  @Test func acceptsBracketedIPv6Host() throws {
    let url = try UpstreamURL.parse("https://[::1]:8443/api").get()
    #expect(url.host == "::1")
    #expect(url.origin == "https://[::1]:8443")
    #expect(url.basePath == "/api")
  }

  @Test func acceptsBracketedIPv6HostWithoutPort() throws {
    let url = try UpstreamURL.parse("https://[::1]").get()
    #expect(url.host == "::1")
    #expect(url.origin == "https://[::1]")
    #expect(url.basePath == "")
  }

  @Test func acceptsBracketedIPv6HostWithPortOnly() throws {
    let url = try UpstreamURL.parse("https://[::1]:8443").get()
    #expect(url.host == "::1")
    #expect(url.origin == "https://[::1]:8443")
    #expect(url.basePath == "")
  }

  @Test func acceptsPortAndBasePathWithTrailingSlash() throws {
    let url = try UpstreamURL.parse("https://api.example.com:8443/base/").get()
    #expect(url.host == "api.example.com")
    #expect(url.origin == "https://api.example.com:8443")
    #expect(url.basePath == "/base")
  }

  @Test func refusesPlainHTTP() throws {
    let result = UpstreamURL.parse("http://api.example.com")
    #expect(throws: ConfigProblem.self) { try result.get() }
    guard case .failure(let problem) = result else { return }
    #expect(problem.description.contains("https://"))
  }

  @Test(arguments: [
    "https://user:pass@api.example.com", "https://user@api.example.com/v1", "https://api.example.com/?x=1",
    "https://api.example.com?x=1", "https://api.example.com/v1#top", "https://", "https:///v1",
    "https://api.example.com:99999", "https://api.example.com:0", "https://api.example.com:https", "ftp://api.example.com",
    "api.example.com", "https://:443", "https://[::1]:99999", "https://[::1]junk", "https://[::1]:", "https://[::1",
    "https://[]:443", "https://api.example.com:+443", "https://[::1]:+443", "https://api.example.com/v 1",
    "https://api.example.com/v\t1", "https://api.example.com/caf\u{E9}",
  ])
  func refusesAnythingButAPlainHTTPSURL(text: String) {
    #expect(throws: ConfigProblem.self) { try UpstreamURL.parse(text).get() }
  }
}

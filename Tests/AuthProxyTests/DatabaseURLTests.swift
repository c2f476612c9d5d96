import Testing

@testable import AuthProxy

/// `--database-url` and the `db:` flags (issue 19): what is accepted, what is refused and why.
struct DatabaseURLTests {
  func parse(_ text: String) -> DatabaseURL? { try? DatabaseURL.parse(text).get() }

  func problem(_ text: String) -> String? {
    if case .failure(let problem) = DatabaseURL.parse(text) { return problem.reason }
    return nil
  }

  @Test func readsBothEnginesWithTheirHostPortAndDatabase() throws {
    let postgres = try #require(parse("postgres://authproxy@db.example.com:5433/app?application_name=x"))
    #expect(postgres.engine == .postgres)
    #expect(postgres.hosts == ["db.example.com"])
    #expect(postgres.port == 5433)
    #expect(postgres.database == "app")
    #expect(postgres.transport == .verifiedTLS)
    #expect(!postgres.isLoopback)
    let mysql = try #require(parse("mysql://authproxy@[::1]:3307/app"))
    #expect(mysql.engine == .mysql)
    #expect(mysql.hosts == ["::1"])
    #expect(mysql.isLoopback)
    #expect(parse("postgresql:///app")?.isLoopback == true, "no host: the local socket")
  }

  @Test func aPasswordIsKeptButNeverShown() throws {
    let url = try #require(parse("postgres://authproxy:s%40cret@db.example.com/app"))
    #expect(url.hasPassword)
    #expect(url.password?.reveal == "s@cret")
    #expect(!url.redacted.contains("cret"))
    #expect(url.redacted == "postgres://authproxy@db.example.com/app")
    #expect(!"\(url)".contains("s%40cret") && !"\(url)".contains("s@cret"))
  }

  @Test func plainIsOnlyForLoopbackAndOnlyWhenAsked() throws {
    #expect(parse("postgres://a@127.0.0.1/app?sslmode=disable")?.transport == .plainLoopback)
    #expect(parse("mysql://a@localhost/app?ssl-mode=DISABLED")?.transport == .plainLoopback)
    #expect(problem("postgres://a@db.example.com/app?sslmode=disable")?.contains("not loopback") == true)
    #expect(problem("postgres://a@127.0.0.1,db.example.com/app?sslmode=disable")?.contains("not loopback") == true)
    #expect(problem("postgres://a@db.example.com/app?sslmode=require")?.contains("verify-full") == true)
    #expect(problem("postgres://a@db.example.com/app?sslmode=prefer") != nil)
  }

  @Test func badURLsAreRefusedWithAnExample() {
    #expect(problem("postgress://x/app")?.contains("postgres:// or mysql://") == true)
    #expect(problem("https://db.example.com/app") != nil)
    #expect(problem("mysql://a@db.example.com") != nil, "mysql:// needs a database")
    #expect(problem("mysql://a@db.example.com/app?charset=utf8")?.contains("charset") == true)
    #expect(problem("postgres://a@db.example.com:99999/app")?.contains("port") == true)
    #expect(problem("postgres://a@[::1/app")?.contains("IPv6") == true)
  }

  @Test func theDBSourceNeedsAURLAndAPasswordOnlyOutsideTheFlag() {
    let base = ["upstream": "https://api.example.com", "credentials": "db:7"]
    guard case .failure(let missing) = ServeConfig.load(flags: base, environment: [:]) else {
      Issue.record("db: without --database-url was accepted")
      return
    }
    #expect(missing.description.contains("needs --database-url"))
    let fromVariable = ServeConfig.load(flags: base, environment: ["AUTHPROXY_DATABASE_URL": "postgres://a:pw@db.example.com/app"])
    #expect((try? fromVariable.get())?.database?.url.hasPassword == true)
    guard
      case .failure(let inFlag) = ServeConfig.load(
        flags: base.merging(["database-url": "postgres://a:pw-in-flag@db.example.com/app"]) { a, _ in a }, environment: [:])
    else {
      Issue.record("a password in the --database-url flag was accepted")
      return
    }
    #expect(inFlag.description.contains("ps"))
    #expect(!inFlag.description.contains("pw-in-flag"))
  }

  @Test func pollAndTimeoutHaveDefaultsAndAreChecked() throws {
    let config = try ServeConfig.load(
      flags: ["upstream": "https://api.example.com", "credentials": "db:7", "database-url": "postgres://a@db.example.com/app"],
      environment: [:]
    ).get()
    #expect(config.credentialsPoll == 60)
    #expect(config.database?.timeout == 10)
    #expect(CredentialSpec.parse("db:7") == .database(id: "7"))
    #expect(CredentialSpec.parse("db:") == nil)
    #expect(CredentialSpec.parse("db:7\nx") == nil)
    let bad = ServeConfig.load(
      flags: [
        "upstream": "https://api.example.com", "credentials": "db:7", "database-url": "postgres://a@db.example.com/app",
        "database-timeout": "10ms", "credentials-poll": "soon",
      ], environment: [:])
    guard case .failure(let errors) = bad else {
      Issue.record("accepted")
      return
    }
    #expect(errors.problems.count == 2)
  }
}

import Testing

@testable import AuthProxy

// MARK: - Builders

private let password = "hunter2-correct-horse"

private func dumped<T>(_ value: T) -> String {
  var out = ""
  dump(value, to: &out)
  return out
}

// MARK: - Specification

@Suite struct SecretTests {

  @Test func revealGivesTheValue() {
    #expect(Secret(password).reveal == password)
    #expect(!Secret(password).isEmpty)
    #expect(Secret("").isEmpty)
  }

  @Test func descriptionIsRedacted() {
    let secret = Secret(password)
    #expect(secret.description == "<redacted>")
    #expect(secret.debugDescription == "<redacted>")
    #expect(String(describing: secret) == "<redacted>")
    #expect(String(reflecting: secret) == "<redacted>")
  }

  @Test func interpolationIsRedacted() {
    let secret = Secret(password)
    let text = "password=\(secret)"
    #expect(text == "password=<redacted>")
  }

  @Test func dumpShowsNoValue() {
    let output = dumped(Secret(password))
    #expect(!output.isEmpty)
    #expect(!output.contains(password))
  }

  @Test func mirrorHasNoChildren() {
    #expect(Mirror(reflecting: Secret(password)).children.isEmpty)
  }

  @Test func containingValuesPrintNoSecret() {
    let credentials = Credentials(username: "integration", password: Secret(password))
    let pair = TokenPair(
      accessToken: Secret("access-\(password)"), refreshToken: Secret("refresh-\(password)"), accessExpiresAt: 1,
      refreshExpiresAt: 2, clientID: "client-1")
    for text in [
      String(describing: credentials), String(reflecting: credentials), dumped(credentials), "\(credentials)",
      String(describing: pair), String(reflecting: pair), dumped(pair), dumped([credentials]), "\(Optional(pair) as Any)",
    ] {
      #expect(!text.contains(password), "\(text)")
    }
    #expect(String(describing: credentials).contains("integration"))
  }

  @Test func secretsCompareByValue() {
    #expect(Secret("a") == Secret("a"))
    #expect(Secret("a") != Secret("b"))
  }
}

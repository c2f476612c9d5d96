import Testing

@testable import AuthProxy

// MARK: - Builders

/// 2026-11-29T10:00:00Z and 2026-12-06T09:00:00Z in seconds since the epoch.
private let accessExpiry = 1_795_946_400.0
private let refreshExpiry = 1_796_547_600.0

private func tokenFields(dropping dropped: Set<String> = [], replacing replaced: [String: String] = [:]) -> String {
  let fields: [(String, String)] = [
    ("access_token", "\"acc-123\""), ("refresh_token", "\"ref-456\""),
    ("access_expires_at", "\"2026-11-29T10:00:00Z\""), ("refresh_expires_at", "\"2026-12-06T09:00:00Z\""),
    ("client_id", "\"client-7\""),
  ]
  let members = fields.filter { !dropped.contains($0.0) }.map { "\"\($0.0)\":\(replaced[$0.0] ?? $0.1)" }
  return "{" + members.joined(separator: ",") + "}"
}

private func enveloped(_ fields: String) -> String { "{\"success\":true,\"data\":\(fields)}" }

private func parse(_ body: String) -> TokenPair? { APIResponse.tokenPair(from: Array(body.utf8)) }

private func code(_ body: String) -> String? { APIResponse.errorCode(from: Array(body.utf8)) }

// MARK: - Specification

@Suite struct TokenPairTests {

  @Test func readsTokensInTheEnvelope() throws {
    let pair = try #require(parse(enveloped(tokenFields())))
    #expect(pair.accessToken.reveal == "acc-123")
    #expect(pair.refreshToken.reveal == "ref-456")
    #expect(pair.accessExpiresAt == accessExpiry)
    #expect(pair.refreshExpiresAt == refreshExpiry)
    #expect(pair.clientID == "client-7")
  }

  @Test func readsTokensWithoutTheEnvelope() throws {
    let flat = try #require(parse(tokenFields()))
    #expect(flat == parse(enveloped(tokenFields())))
    #expect(flat.accessToken.reveal == "acc-123")
  }

  @Test func ignoresUnknownFields() throws {
    let body = "{\"success\":true,\"data\":{\"token_type\":\"Bearer\"," + tokenFields().dropFirst() + ",\"extra\":[1,2]}"
    #expect(try #require(parse(body)).accessToken.reveal == "acc-123")
  }

  @Test(arguments: ["access_token", "refresh_token", "access_expires_at"])
  func missingRequiredFieldIsNoTokenPair(field: String) {
    #expect(parse(enveloped(tokenFields(dropping: [field]))) == nil)
    #expect(parse(tokenFields(dropping: [field])) == nil)
  }

  @Test(arguments: ["access_token", "refresh_token"])
  func emptyTokenIsNoTokenPair(field: String) {
    #expect(parse(enveloped(tokenFields(replacing: [field: "\"\""]))) == nil)
  }

  @Test(arguments: ["\"tomorrow\"", "\"2026-11-29 10:00\"", "1795946400", "null"])
  func badAccessExpiryIsNoTokenPair(value: String) {
    #expect(parse(enveloped(tokenFields(replacing: ["access_expires_at": value]))) == nil)
  }

  @Test func missingRefreshExpiryIsTakenAsSevenDays() throws {
    let pair = try #require(parse(enveloped(tokenFields(dropping: ["refresh_expires_at"]))))
    #expect(pair.refreshExpiresAt == accessExpiry + 7 * 86400)
  }

  @Test func missingClientIDIsEmpty() throws {
    #expect(try #require(parse(tokenFields(dropping: ["client_id"]))).clientID == "")
  }

  @Test(arguments: [
    "", "not json", "[]", "{}", "{\"success\":true,\"data\":null}", "{\"success\":false}",
    "{\"error\":{\"code\":\"UNAUTHORIZED\",\"message\":\"bad\"}}",
  ])
  func bodiesWithoutTokensAreNoTokenPair(body: String) {
    #expect(parse(body) == nil)
  }

  // MARK: Error codes

  @Test func readsTheNestedErrorCode() {
    #expect(
      code("{\"error\":{\"name\":\"ForbiddenError\",\"code\":\"FORBIDDEN\",\"message\":\"IP address not authorized\"}}")
        == "FORBIDDEN")
  }

  @Test func fallsBackToTheNestedErrorName() {
    #expect(code("{\"error\":{\"name\":\"UnauthorizedError\",\"message\":\"Invalid credentials\"}}") == "UnauthorizedError")
  }

  @Test func readsTheFlatErrorCode() {
    #expect(code("{\"error\":\"unauthorized\",\"message\":\"Invalid credentials\"}") == "unauthorized")
    #expect(code("{\"error\":\"forbidden\"}") == "forbidden")
  }

  @Test(arguments: ["", "<html>502</html>", "{}", "{\"message\":\"no code\"}", "{\"error\":42}", "[1]"])
  func bodiesWithoutAnErrorHaveNoCode(body: String) {
    #expect(code(body) == nil)
  }
}

import Foundation
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
    ("client_id", "123456"),
  ]
  let members = fields.filter { !dropped.contains($0.0) }.map { "\"\($0.0)\":\(replaced[$0.0] ?? $0.1)" }
  return "{" + members.joined(separator: ",") + "}"
}

private func enveloped(_ fields: String) -> String { "{\"success\":true,\"data\":\(fields)}" }

/// The wall clock at the time of the answer, for expiries the answer does not give.
private let answeredAt = 1_795_900_000.0

private func answer(_ body: String) -> APIResponse.TokenAnswer? { APIResponse.tokenAnswer(from: Array(body.utf8), now: answeredAt) }

private func parse(_ body: String) -> TokenPair? { answer(body)?.pair }

/// A JWT whose payload is `payload` (header and signature are not read).
private func jwt(_ payload: String) -> String {
  func b64url(_ text: String) -> String {
    Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
      .replacingOccurrences(of: "=", with: "")
  }
  return b64url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}") + "." + b64url(payload) + ".c2lnbmF0dXJl"
}

private func code(_ body: String) -> String? { APIResponse.errorCode(from: Array(body.utf8)) }

// MARK: - Specification

@Suite struct TokenPairTests {

  @Test func readsTokensInTheEnvelope() throws {
    let pair = try #require(parse(enveloped(tokenFields())))
    #expect(pair.accessToken.reveal == "acc-123")
    #expect(pair.refreshToken.reveal == "ref-456")
    #expect(pair.accessExpiresAt == accessExpiry)
    #expect(pair.refreshExpiresAt == refreshExpiry)
    #expect(pair.clientID == "123456")
    #expect(answer(enveloped(tokenFields()))?.expirySource == .field)
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

  @Test(arguments: ["access_token", "refresh_token"])
  func missingTokenIsNoTokenPair(field: String) {
    #expect(parse(enveloped(tokenFields(dropping: [field]))) == nil)
    #expect(parse(tokenFields(dropping: [field])) == nil)
  }

  @Test(arguments: ["access_token", "refresh_token"])
  func emptyOrMistypedTokenIsNoTokenPair(field: String) {
    #expect(parse(enveloped(tokenFields(replacing: [field: "\"\""]))) == nil)
    #expect(parse(enveloped(tokenFields(replacing: [field: "42"]))) == nil)
    #expect(parse(enveloped(tokenFields(replacing: [field: "null"]))) == nil)
  }

  @Test func clientIDMayBeANumberOrAString() throws {
    #expect(try #require(parse(enveloped(tokenFields()))).clientID == "123456")
    #expect(try #require(parse(enveloped(tokenFields(replacing: ["client_id": "\"client-7\""])))).clientID == "client-7")
  }

  @Test(arguments: ["null", "\"\"", "1.5", "{\"id\":1}", "[1]", "true"])
  func anUnreadableClientIDIsUnknownNotAFailedLogin(value: String) throws {
    let pair = try #require(parse(enveloped(tokenFields(replacing: ["client_id": value]))))
    #expect(pair.clientID == nil)
    #expect(pair.accessToken.reveal == "acc-123")
  }

  @Test func aMissingClientIDIsUnknown() throws {
    #expect(try #require(parse(tokenFields(dropping: ["client_id"]))).clientID == nil)
  }

  @Test(arguments: [
    ("2026-11-29T10:00:00Z", accessExpiry), ("2026-11-29T10:00:00.250Z", accessExpiry + 0.25),
    ("2026-11-29T12:00:00+02:00", accessExpiry), ("2026-11-29T05:30:00-04:30", accessExpiry),
    ("2026-11-29t10:00:00z", accessExpiry), ("2026-11-29T10:00:00.123456789+00:00", accessExpiry + 0.123456789),
  ])
  func readsFullRFC3339Expiries(text: String, expected: Double) throws {
    let pair = try #require(parse(enveloped(tokenFields(replacing: ["access_expires_at": "\"\(text)\""]))))
    #expect(abs(pair.accessExpiresAt - expected) < 1e-6)
  }

  @Test(arguments: ["\"tomorrow\"", "\"2026-11-29 10:00\"", "1795946400", "null", "{}"])
  func anUnreadableExpiryFallsBackToTheJWTExpClaim(value: String) throws {
    let token = jwt("{\"sub\":\"123456\",\"exp\":1795946999}")
    let body = enveloped(tokenFields(replacing: ["access_expires_at": value, "access_token": "\"\(token)\""]))
    let read = try #require(answer(body))
    #expect(read.pair.accessExpiresAt == 1_795_946_999)
    #expect(read.expirySource == .tokenClaim)
    #expect(read.expirySource.warning?.contains("exp claim") == true)
  }

  @Test func aMissingExpiryOfAnOpaqueTokenIsTheDocumentedHour() throws {
    let read = try #require(answer(enveloped(tokenFields(dropping: ["access_expires_at"]))))
    #expect(read.pair.accessExpiresAt == answeredAt + 3600)
    #expect(read.expirySource == .documentedLifetime)
    #expect(read.expirySource.warning?.contains("1 hour") == true)
  }

  @Test(arguments: ["{\"sub\":1}", "{\"exp\":\"soon\"}", "not json", "{\"exp\":-5}"])
  func aJWTWithoutAUsableExpIsTheDocumentedHour(payload: String) throws {
    let body = enveloped(tokenFields(dropping: ["access_expires_at"], replacing: ["access_token": "\"\(jwt(payload))\""]))
    let read = try #require(answer(body))
    #expect(read.expirySource == .documentedLifetime)
    #expect(read.pair.accessExpiresAt == answeredAt + 3600)
  }

  @Test func anExpiryFromTheFieldBeatsTheClaim() throws {
    let token = jwt("{\"exp\":1}")
    let pair = try #require(parse(enveloped(tokenFields(replacing: ["access_token": "\"\(token)\""]))))
    #expect(pair.accessExpiresAt == accessExpiry)
  }

  @Test func missingRefreshExpiryIsTakenAsSevenDays() throws {
    let pair = try #require(parse(enveloped(tokenFields(dropping: ["refresh_expires_at"]))))
    #expect(pair.refreshExpiresAt == accessExpiry + 7 * 86400)
    let unreadable = try #require(parse(enveloped(tokenFields(replacing: ["refresh_expires_at": "\"next week\""]))))
    #expect(unreadable.refreshExpiresAt == accessExpiry + 7 * 86400)
  }

  @Test func anEnvelopeWithoutTokensFallsBackToTheBareFields() throws {
    // `data` holding something else (a logout message) is not a token answer; bare fields beside it are.
    let body = "{\"success\":true,\"data\":{\"message\":\"ok\"}," + tokenFields().dropFirst()
    #expect(try #require(parse(body)).accessToken.reveal == "acc-123")
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

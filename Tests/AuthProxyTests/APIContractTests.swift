import Foundation
import Testing

@testable import AuthProxy
import TestSupport

/// What authproxy must make of each documented answer.
private enum Expected {
  /// A token pair: the access and refresh expiries (RFC 3339) and the client.
  case pair(access: String, refresh: String, client: String)
  case failure(TokenFailure, reason: String)
  case loggedOut
}

private let expectations: [String: Expected] = [
  "login-200-envelope": .pair(access: "2024-01-15T10:30:00Z", refresh: "2024-01-22T09:30:00Z", client: "123456"),
  "login-200-bare": .pair(access: "2024-01-15T10:30:00Z", refresh: "2024-01-22T09:00:00Z", client: "123456"),
  "refresh-200-envelope": .pair(access: "2024-01-15T10:30:00Z", refresh: "2024-01-22T09:30:00Z", client: "123456"),
  "login-400-syntax": .failure(
    .apiError(status: 400), reason: "the API refused the login request as invalid (HTTP 400): are the username and password set?"),
  "login-400-validation": .failure(
    .apiError(status: 400), reason: "the API refused the login request as invalid (HTTP 400): are the username and password set?"),
  "login-400-flat": .failure(
    .apiError(status: 400), reason: "the API refused the login request as invalid (HTTP 400): are the username and password set?"),
  "login-401-invalid-credentials": .failure(
    .invalidCredentials, reason: "invalid credentials: the API refused the username or password"),
  "login-401-flat": .failure(.invalidCredentials, reason: "invalid credentials: the API refused the username or password"),
  "login-403-ip-not-authorized": .failure(
    .ipNotAuthorized, reason: "IP address not authorized by the API: the egress IP is not on the account's whitelist"),
  "login-429-flat": .failure(.rateLimited(retryAfter: nil), reason: "rate limited by the API: too many login attempts"),
  "login-429-flat-retry-after": .failure(.rateLimited(retryAfter: 30), reason: "rate limited by the API: too many login attempts"),
  "refresh-400-syntax": .failure(.refreshRejected, reason: "the API refused the refresh token"),
  "refresh-400-validation": .failure(.refreshRejected, reason: "the API refused the refresh token"),
  "refresh-401-invalid-refresh-token": .failure(.refreshRejected, reason: "the API refused the refresh token"),
  "refresh-403-ip-not-authorized": .failure(
    .ipNotAuthorized, reason: "IP address not authorized by the API: the egress IP is not on the account's whitelist"),
  "logout-200": .loggedOut,
  "logout-401-authentication-required": .failure(
    .tokenRejected, reason: "the API refused the access token (expired or already revoked)"),
]

/// 2024-01-15T09:30:00Z: when the docs' example login was answered.
private let answeredAt = 1_705_311_000.0

private func feed(_ answer: DocumentedAnswer) -> Result<TokenPair?, TokenFailure> {
  let retryAfter = answer.headers["Retry-After"].flatMap { RetryAfter.seconds($0, now: answeredAt) }
  let http = TokenClient.Answer(status: answer.status, body: answer.body, retryAfter: retryAfter)
  switch answer.call {
  case "logout": return TokenClient.logoutOutcome(of: .success(http)).map { nil }
  default: return TokenClient.outcome(of: .success(http), isRefresh: answer.call == "refresh", now: answeredAt).map { $0 }
  }
}

// MARK: - Specification

@Suite struct APIContractTests {

  @Test func everyDocumentedAnswerIsHereAndHasAnExpectation() {
    #expect(DocumentedAnswer.all.count == 17)
    #expect(Set(DocumentedAnswer.all.map(\.name)) == Set(expectations.keys))
  }

  @Test(arguments: DocumentedAnswer.all)
  func eachDocumentedAnswerMeansWhatTheDocsSay(answer: DocumentedAnswer) throws {
    let expected = try #require(expectations[answer.name])
    let outcome = feed(answer)
    switch expected {
    case .pair(let access, let refresh, let client):
      let pair = try #require(try outcome.get())
      #expect(pair.accessToken.reveal == "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...")
      #expect(pair.refreshToken.reveal == "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...")
      #expect(pair.accessExpiresAt == RFC3339.parse(access))
      #expect(pair.refreshExpiresAt == RFC3339.parse(refresh))
      #expect(pair.clientID == client)
    case .loggedOut:
      #expect(throws: Never.self) { try outcome.get() }
    case .failure(let failure, let reason):
      guard case .failure(let got) = outcome else {
        Issue.record("\(answer.name) was read as a success")
        return
      }
      #expect(got == failure)
      // What /readyz says (the last failure's description), and the app's 503 JSON body.
      #expect(got.description == reason)
      let refusal = ProxyError.noToken(got)
      #expect(refusal.status == 503)
      let body = try #require(try JSONSerialization.jsonObject(with: Data(refusal.body(requestID: "rid-1"))) as? [String: Any])
      let error = try #require(body["error"] as? [String: Any])
      #expect(error["code"] as? String == "no_token")
      #expect(error["message"] as? String == "no valid API token: \(reason)")
      #expect(error["request_id"] as? String == "rid-1")
    }
  }

  @Test func aDocumentedTokenAnswerWithATenDigitClientIDStillLogsIn() throws {
    // The docs give client_id as a JSON number; a large one must not be read as a failed login.
    let answer = try #require(DocumentedAnswer.named("login-200-envelope"))
    let text = String(decoding: answer.body, as: UTF8.self).replacingOccurrences(of: "123456", with: "9007199254")
    let pair = try #require(APIResponse.tokenPair(from: Array(text.utf8), now: answeredAt))
    #expect(pair.clientID == "9007199254")
  }

  @Test func aDerivedExpiryIsWarnedAboutOnce() throws {
    let answer = try #require(DocumentedAnswer.named("login-200-envelope"))
    let text = String(decoding: answer.body, as: UTF8.self).replacingOccurrences(of: "\"2024-01-15T10:30:00Z\"", with: "null")
    var warnings: [String] = []
    let outcome = TokenClient.outcome(
      of: .success(TokenClient.Answer(status: 200, body: Array(text.utf8))), isRefresh: false, now: answeredAt
    ) { warnings.append($0) }
    #expect(try outcome.get().accessExpiresAt == answeredAt + 3600)
    #expect(warnings.count == 1)
    #expect(warnings.first?.contains("assuming the documented 1 hour") == true)
    var none: [String] = []
    _ = TokenClient.outcome(of: .success(TokenClient.Answer(status: 200, body: answer.body)), isRefresh: false, now: answeredAt) {
      none.append($0)
    }
    #expect(none.isEmpty)
  }

  @Test func aLogoutAnswerIsNotATokenAnswer() throws {
    let logout = try #require(DocumentedAnswer.named("logout-200"))
    #expect(APIResponse.tokenPair(from: logout.body, now: answeredAt) == nil)
  }

  @Test(arguments: DocumentedAnswer.all.filter { $0.status >= 400 })
  func errorsAreReadByCodeOrStatusNeverByMessage(answer: DocumentedAnswer) throws {
    // Rewording every message must not change the outcome.
    let reworded = String(decoding: answer.body, as: UTF8.self)
      .replacingOccurrences(of: "Invalid credentials", with: "Nope")
      .replacingOccurrences(of: "IP address not authorized", with: "Go away")
      .replacingOccurrences(of: "Too many login attempts. Please try again later.", with: "Slow down")
    var changed = answer
    changed.body = Array(reworded.utf8)
    switch (feed(answer), feed(changed)) {
    case (.failure(let before), .failure(let after)): #expect(before == after)
    default: Issue.record("\(answer.name): an error answer was read as a success")
    }
  }
}

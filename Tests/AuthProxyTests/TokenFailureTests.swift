import Testing

@testable import AuthProxy

// MARK: - Builders

private func nestedError(code: String, message: String) -> [UInt8] {
  Array("{\"error\":{\"name\":\"Error\",\"code\":\"\(code)\",\"message\":\"\(message)\"}}".utf8)
}

private func flatError(_ error: String, message: String) -> [UInt8] {
  Array("{\"error\":\"\(error)\",\"message\":\"\(message)\"}".utf8)
}

private func loginFailure(_ status: Int, _ body: [UInt8] = [], retryAfter: Double? = nil) -> TokenFailure {
  TokenFailure.from(status: status, body: body, retryAfter: retryAfter, isRefresh: false)
}

private func refreshFailure(_ status: Int, _ body: [UInt8] = [], retryAfter: Double? = nil) -> TokenFailure {
  TokenFailure.from(status: status, body: body, retryAfter: retryAfter, isRefresh: true)
}

// MARK: - Specification

@Suite struct TokenFailureTests {

  @Test func unauthorizedLoginIsInvalidCredentials() {
    #expect(loginFailure(401, nestedError(code: "UNAUTHORIZED", message: "Invalid credentials")) == .invalidCredentials)
  }

  @Test func unauthorizedRefreshIsRefreshRejected() {
    #expect(refreshFailure(401, nestedError(code: "UNAUTHORIZED", message: "Token revoked")) == .refreshRejected)
  }

  @Test func forbiddenCodeIsIPNotAuthorized() {
    #expect(loginFailure(403, nestedError(code: "FORBIDDEN", message: "IP address not authorized")) == .ipNotAuthorized)
    #expect(loginFailure(403, flatError("forbidden", message: "IP address not authorized")) == .ipNotAuthorized)
  }

  @Test func otherForbiddenIsForbidden() {
    #expect(loginFailure(403, nestedError(code: "ACCOUNT_DISABLED", message: "Account disabled")) == .forbidden)
    #expect(loginFailure(403) == .forbidden)
  }

  @Test func classificationNeverDependsOnTheMessageText() {
    // The whitelist code with an unrelated message is still the whitelist failure…
    #expect(loginFailure(403, nestedError(code: "FORBIDDEN", message: "something else entirely")) == .ipNotAuthorized)
    // …and the whitelist message under another code is not.
    #expect(loginFailure(403, nestedError(code: "ACCOUNT_DISABLED", message: "IP address not authorized")) == .forbidden)
    #expect(
      loginFailure(401, nestedError(code: "UNAUTHORIZED", message: "IP address not authorized")) == .invalidCredentials)
  }

  @Test func tooManyRequestsIsRateLimitedWithRetryAfter() {
    let failure = loginFailure(429, flatError("too_many_requests", message: "slow down"), retryAfter: 30)
    #expect(failure == .rateLimited(retryAfter: 30))
    #expect(failure.retryAfter == 30)
  }

  @Test func tooManyRequestsWithoutRetryAfter() {
    let failure = loginFailure(429)
    #expect(failure == .rateLimited(retryAfter: nil))
    #expect(failure.retryAfter == nil)
  }

  @Test func onlyRateLimitingCarriesARetryAfter() {
    #expect(loginFailure(401, retryAfter: 30).retryAfter == nil)
    #expect(loginFailure(503, retryAfter: 30).retryAfter == nil)
  }

  @Test func badRefreshRequestIsRefreshRejected() {
    #expect(refreshFailure(400) == .refreshRejected)
    #expect(loginFailure(400) == .apiError(status: 400))
  }

  @Test(arguments: [404, 500, 502, 503])
  func otherStatusesAreAPIErrors(status: Int) {
    #expect(loginFailure(status) == .apiError(status: status))
    #expect(loginFailure(status).description.contains(String(status)))
  }

  @Test func codesAreLabelSafe() {
    let failures: [TokenFailure] = [
      .invalidCredentials, .ipNotAuthorized, .forbidden, .rateLimited(retryAfter: 1), .refreshRejected,
      .apiError(status: 500), .badResponse, .unreachable(UpstreamFailure.from(curlCode: 7)),
    ]
    for failure in failures {
      #expect(!failure.code.isEmpty)
      #expect(failure.code.allSatisfy { ("a"..."z").contains($0) || $0 == "_" }, "\(failure.code)")
    }
    #expect(Set(failures.map(\.code)).count == failures.count)
  }

  @Test func ipWhitelistFailureSaysWhy() {
    #expect(TokenFailure.ipNotAuthorized.description.contains("IP address not authorized"))
  }

  // MARK: Upstream failures

  @Test func curlTimeoutIsGatewayTimeout() {
    let failure = UpstreamFailure.from(curlCode: 28)
    #expect(failure.status == 504)
    #expect(failure.code == "upstream_timeout")
  }

  @Test func untrustedCertificateIsBadGatewaySayingSo() {
    let failure = UpstreamFailure.from(curlCode: 60)
    #expect(failure.status == 502)
    #expect(failure.message == "upstream certificate not trusted")
  }

  @Test func refusedConnectionIsBadGateway() {
    let failure = UpstreamFailure.from(curlCode: 7)
    #expect(failure.status == 502)
    #expect(failure.code == "upstream_unreachable")
  }

  @Test(arguments: [6 as Int32, 35, 52, 56, 90, 91, 9999])
  func everyOtherCurlFailureIsBadGateway(curlCode: Int32) {
    let failure = UpstreamFailure.from(curlCode: curlCode)
    #expect(failure.status == 502)
    #expect(failure.code.hasPrefix("upstream_"))
    #expect(!failure.message.isEmpty)
  }

  @Test func unreachableFailureSaysTheCause() {
    #expect(TokenFailure.unreachable(UpstreamFailure.from(curlCode: 60)).description.contains("certificate not trusted"))
  }
}

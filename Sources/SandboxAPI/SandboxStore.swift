import FoundationEssentials
import Synchronization

/// A token pair as issued by login or refresh.
struct SandboxTokenPair: Sendable {
  var accessToken: String
  var refreshToken: String
  var accessExpiresAt: Date
  var refreshExpiresAt: Date
  var clientID: Int
}

/// The sandbox's accounts, tokens, counters and test controls. Shared between the loop thread
/// that serves and the test threads that steer it, so everything sits behind one Mutex.
final class SandboxStore: Sendable {
  private struct Token {
    let clientID: Int
    let expiresAt: Date
  }

  private struct State {
    var users: [String: SandboxUser]
    var accessLifetime: Double
    var refreshLifetime: Double
    /// Live tokens: expired ones stay (to answer "Token expired") until pruned; revoked ones go.
    var access: [String: Token] = [:]
    var refresh: [String: Token] = [:]
    var counters = SandboxCounters()
    var loginFailure: SandboxLoginFailure?
    var envelope = true
    var flatErrors = false
    var clientIDForm = SandboxClientIDForm.number
    var loginDelay = 0.0
    var lastAPIRequest: SandboxRecordedRequest?
    /// The `traceparent` of each auth call, in order, with its path ("" when it had none).
    var authTraceparents: [(path: String, traceparent: String)] = []
    var issuedSecrets: [String] = []
    var issuedSincePrune = 0
    /// Requests seen by the fault endpoints (`/api/v1/flaky`, `/reset`, `/truncate`), by key.
    var hits: [String: Int] = [:]
  }

  private let state: Mutex<State>

  init(users: [SandboxUser], accessLifetime: Double, refreshLifetime: Double) {
    var byName: [String: SandboxUser] = [:]
    for user in users { byName[user.username] = user }
    state = Mutex(State(users: byName, accessLifetime: accessLifetime, refreshLifetime: refreshLifetime))
  }

  // MARK: the auth calls

  private struct LoginRequest: Decodable {
    let username: String?
    let password: String?
  }

  private struct RefreshRequest: Decodable {
    let refreshToken: String?
    enum CodingKeys: String, CodingKey { case refreshToken = "refresh_token" }
  }

  /// `POST /auth/login`.
  func login(body: [UInt8], now: Date = Date()) -> Result<SandboxTokenPair, SandboxFailure> {
    let parsed = SandboxJSON.decode(LoginRequest.self, from: body)
    return state.withLock { state in
      let result: Result<SandboxTokenPair, SandboxFailure>
      // The account's IP whitelist, rate limit and outages come before the body is looked at.
      if let failure = state.loginFailure, failure != .invalidCredentials {
        result = .failure(SandboxFailure(failure))
      } else if parsed == nil {
        result = .failure(.syntaxError)
      } else if let parsed, let username = parsed.username, let password = parsed.password {
        if state.loginFailure == nil, let user = state.users[username], user.password == password {
          result = .success(Self.issue(clientID: user.clientID, now: now, in: &state))
        } else {
          result = .failure(.invalidCredentials)
        }
      } else {
        result = .failure(.validationFailure("Username and password are required"))
      }
      if case .success = result { state.counters.logins += 1 } else { state.counters.failedLogins += 1 }
      return result
    }
  }

  /// `POST /auth/refresh`: a new pair for the same client; the refresh token used is revoked,
  /// the access token issued with it stays valid until it expires.
  func refresh(body: [UInt8], now: Date = Date()) -> Result<SandboxTokenPair, SandboxFailure> {
    let parsed = SandboxJSON.decode(RefreshRequest.self, from: body)
    return state.withLock { state in
      let result: Result<SandboxTokenPair, SandboxFailure>
      // The IP whitelist applies to refreshes too (the docs' authentication overview).
      if state.loginFailure == .ipNotWhitelisted {
        result = .failure(.ipNotWhitelisted)
      } else if parsed == nil {
        result = .failure(.syntaxError)
      } else if let presented = parsed?.refreshToken {
        if let token = state.refresh[presented] {
          if token.expiresAt > now {
            state.refresh[presented] = nil
            result = .success(Self.issue(clientID: token.clientID, now: now, in: &state))
          } else {
            result = .failure(.invalidRefreshToken)
          }
        } else {
          result = .failure(.invalidRefreshToken)
        }
      } else {
        result = .failure(.validationFailure("Refresh token is required"))
      }
      if case .success = result { state.counters.refreshes += 1 } else { state.counters.failedRefreshes += 1 }
      return result
    }
  }

  /// `POST /auth/logout`: revokes every access and refresh token of the presenter's client.
  /// Returns the client and how many tokens went.
  func logout(authorization: String?, now: Date = Date()) -> Result<(clientID: Int, revoked: Int), SandboxFailure> {
    state.withLock { state in
      switch Self.check(authorization, now: now, in: state) {
      case .failure(let failure):
        return .failure(failure)
      case .success(let clientID):
        let before = state.access.count + state.refresh.count
        state.access = state.access.filter { $0.value.clientID != clientID }
        state.refresh = state.refresh.filter { $0.value.clientID != clientID }
        state.counters.logouts += 1
        return .success((clientID, before - state.access.count - state.refresh.count))
      }
    }
  }

  /// Checks an `/api/v1` request's bearer token and counts the request; returns its client.
  func authorize(authorization: String?, now: Date = Date()) -> Result<Int, SandboxFailure> {
    state.withLock { state in
      let result = Self.check(authorization, now: now, in: state)
      if case .success = result { state.counters.apiRequests += 1 } else { state.counters.unauthorizedAPIRequests += 1 }
      return result
    }
  }

  private static func check(_ authorization: String?, now: Date, in state: State) -> Result<Int, SandboxFailure> {
    guard let authorization else { return .failure(.unauthorized("Authentication required")) }
    let parts = authorization.split(separator: " ")
    guard parts.count == 2, parts[0].lowercased() == "bearer" else {
      return .failure(.unauthorized("Authentication required"))
    }
    let presented = String(parts[1])
    guard let token = state.access[presented] else { return .failure(.unauthorized("Invalid or revoked token")) }
    guard token.expiresAt > now else { return .failure(.unauthorized("Token expired")) }
    return .success(token.clientID)
  }

  private static func issue(clientID: Int, now: Date, in state: inout State) -> SandboxTokenPair {
    let pair = SandboxTokenPair(
      accessToken: "at_" + randomToken(), refreshToken: "rt_" + randomToken(),
      accessExpiresAt: now.addingTimeInterval(state.accessLifetime),
      refreshExpiresAt: now.addingTimeInterval(state.refreshLifetime), clientID: clientID)
    state.access[pair.accessToken] = Token(clientID: clientID, expiresAt: pair.accessExpiresAt)
    state.refresh[pair.refreshToken] = Token(clientID: clientID, expiresAt: pair.refreshExpiresAt)
    state.issuedSecrets.append(pair.accessToken)
    state.issuedSecrets.append(pair.refreshToken)
    state.issuedSincePrune += 1
    if state.issuedSincePrune >= 1024 {
      // Long-expired tokens are forgotten (they then answer "Invalid or revoked token"): bounded memory
      // under a benchmark that refreshes all the time.
      state.issuedSincePrune = 0
      let horizon = now.addingTimeInterval(-3600)
      state.access = state.access.filter { $0.value.expiresAt > horizon }
      state.refresh = state.refresh.filter { $0.value.expiresAt > horizon }
    }
    return pair
  }

  /// 43 url-safe characters: 258 random bits.
  private static func randomToken() -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    var generator = SystemRandomNumberGenerator()
    var bytes: [UInt8] = []
    bytes.reserveCapacity(43)
    while bytes.count < 43 {
      var word = generator.next()
      for _ in 0..<10 where bytes.count < 43 {
        bytes.append(alphabet[Int(word & 63)])
        word >>= 6
      }
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  // MARK: API bookkeeping and test controls

  func record(_ request: SandboxRecordedRequest) { state.withLock { $0.lastAPIRequest = request } }
  func recordAuth(path: String, traceparent: String?) {
    state.withLock { $0.authTraceparents.append((path, traceparent ?? "")) }
  }
  var authTraceparents: [(path: String, traceparent: String)] { state.withLock { $0.authTraceparents } }

  /// Counts one more order; returns its number.
  func nextOrder() -> Int {
    state.withLock { state in
      state.counters.orders += 1
      return state.counters.orders
    }
  }

  /// Whether token answers carry the envelope, and errors are flat, right now.
  var formats: (envelope: Bool, flatErrors: Bool, clientID: SandboxClientIDForm) {
    state.withLock { ($0.envelope, $0.flatErrors, $0.clientIDForm) }
  }
  var counters: SandboxCounters { state.withLock { $0.counters } }
  var lastAPIRequest: SandboxRecordedRequest? { state.withLock { $0.lastAPIRequest } }
  var issuedSecrets: [String] { state.withLock { $0.issuedSecrets } }

  func setLifetimes(access: Double, refresh: Double) {
    state.withLock { state in
      state.accessLifetime = access
      state.refreshLifetime = refresh
    }
  }

  func revokeAllTokens() {
    state.withLock { state in
      state.access.removeAll()
      state.refresh.removeAll()
    }
  }

  /// Counts one more request with `key`; returns the count including this one.
  func hit(_ key: String) -> Int {
    state.withLock { state in
      state.hits[key, default: 0] += 1
      return state.hits[key, default: 0]
    }
  }

  /// How many requests with `key` the fault endpoints have seen.
  func hits(_ key: String) -> Int { state.withLock { $0.hits[key, default: 0] } }

  func failLogins(_ failure: SandboxLoginFailure?) { state.withLock { $0.loginFailure = failure } }
  func setEnvelope(_ on: Bool) { state.withLock { $0.envelope = on } }
  func setFlatErrors(_ on: Bool) { state.withLock { $0.flatErrors = on } }
  func setClientIDForm(_ form: SandboxClientIDForm) { state.withLock { $0.clientIDForm = form } }
  func setLoginDelay(_ seconds: Double) { state.withLock { $0.loginDelay = seconds } }
  var loginDelay: Double { state.withLock { $0.loginDelay } }
}

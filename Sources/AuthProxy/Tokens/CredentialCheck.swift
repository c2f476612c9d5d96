/// `authproxy check-credentials`: one login with the given credentials, on a loop of its own,
/// and a logout only when asked (a logout revokes every token of the client, running proxies'
/// included).
public enum CredentialCheck {
  public struct Outcome: Sendable {
    /// nil when the API's answer did not name the client.
    public var clientID: String?
    public var accessExpiresAt: Double
    /// nil when no logout was asked for.
    public var logout: Result<Void, TokenFailure>?
  }

  public static func run(config: ServeConfig, credentials: Credentials, logout: Bool) throws(EventError) -> Result<Outcome, TokenFailure> {
    let loop = try EventLoop()
    let multi = try CurlMulti(loop: loop)
    let client = TokenClient(multi: multi, config: config)
    var result: Result<Outcome, TokenFailure> = .failure(.badResponse)
    client.login(credentials) { login in
      switch login {
      case .failure(let failure):
        result = .failure(failure)
        loop.stop()
      case .success(let pair):
        var outcome = Outcome(clientID: pair.clientID, accessExpiresAt: pair.accessExpiresAt, logout: nil)
        guard logout else {
          result = .success(outcome)
          loop.stop()
          return
        }
        client.logout(pair.accessToken) { loggedOut in
          outcome.logout = loggedOut
          result = .success(outcome)
          loop.stop()
        }
      }
    }
    loop.run()
    return result
  }
}

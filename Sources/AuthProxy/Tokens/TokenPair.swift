/// What a successful login or refresh returns.
public struct TokenPair: Sendable, Equatable {
  public var accessToken: Secret
  public var refreshToken: Secret
  /// Wall-clock seconds since the epoch.
  public var accessExpiresAt: Double
  public var refreshExpiresAt: Double
  /// The API's client (integration) the tokens belong to; nil when the answer did not say.
  /// A rotation logs the old tokens out only when both clients are known and differ.
  public var clientID: String?

  public init(accessToken: Secret, refreshToken: Secret, accessExpiresAt: Double, refreshExpiresAt: Double, clientID: String?) {
    self.accessToken = accessToken
    self.refreshToken = refreshToken
    self.accessExpiresAt = accessExpiresAt
    self.refreshExpiresAt = refreshExpiresAt
    self.clientID = clientID
  }
}

/// The integration's identity at the API, as a `CredentialSource` loaded it.
public struct Credentials: Sendable, Equatable {
  public var username: String
  public var password: Secret
  /// When the password was last changed, in seconds since the epoch: the JSON's `rotated_at`
  /// if it has one, else the file's modification time for file sources, else nil (unknown).
  /// The basis of the credential-age warning and metric.
  public var rotatedAt: Double?

  public init(username: String, password: Secret, rotatedAt: Double? = nil) {
    self.username = username
    self.password = password
    self.rotatedAt = rotatedAt
  }
}

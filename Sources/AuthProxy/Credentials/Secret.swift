/// A password, token or key. Printing, interpolating or dumping one shows `<redacted>`;
/// only `reveal` gives the value, and only the code that must send it calls that.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
  private let value: String

  public init(_ value: String) { self.value = value }

  /// The secret itself, for the one place that puts it on the wire.
  public var reveal: String { value }
  public var isEmpty: Bool { value.isEmpty }

  public var description: String { "<redacted>" }
  public var debugDescription: String { "<redacted>" }
  public var customMirror: Mirror { Mirror(self, children: []) }
}

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

/// Why credentials could not be had: which source, why, and whether the source was merely
/// unreachable (the CLI exits 69) or the configuration or the secret itself is wrong (64).
/// The description names files, variables and modes, never a password, key or token.
public struct CredentialError: Error, Sendable, Equatable, CustomStringConvertible {
  public enum Kind: Sendable, Equatable {
    /// Wrong configuration or content: missing variable, bad mode, bad JSON, wrong key, 403.
    case invalid
    /// The source could not be reached (Vault down, timed out, sealed): retrying may help.
    case unreachable
  }

  public let kind: Kind
  /// What was being read, as the user named it: `--credentials file:/etc/x.json`, `stdin`.
  public let source: String
  /// Why, in our words, with the fix where there is one.
  public let reason: String

  public var description: String { "\(source): \(reason)" }

  public init(_ kind: Kind, source: String, _ reason: String) {
    self.kind = kind
    self.source = source
    self.reason = reason
  }

  public init(_ kind: Kind, _ spec: CredentialSpec, _ reason: String) {
    self.init(kind, source: "--credentials \(spec)", reason)
  }
}

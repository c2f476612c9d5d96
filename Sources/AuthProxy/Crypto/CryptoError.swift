/// Why a key could not be used or a sealed value could not be opened. The description never
/// contains key material or plaintext.
public struct CryptoError: Error, Sendable, Equatable, CustomStringConvertible {
  public enum Kind: Sendable, Equatable {
    /// The key is not the base64 of exactly 32 bytes.
    case invalidKey
    /// The sealed text is not in the format: not base64, too short, wrong IV or tag length.
    case malformed
    /// The tag did not verify: a different key, or altered bytes.
    case notAuthentic
    /// OpenSSL itself failed (no randomness, out of memory).
    case library
  }

  public let kind: Kind
  public let description: String

  public init(_ kind: Kind, _ description: String) {
    self.kind = kind
    self.description = description
  }
}

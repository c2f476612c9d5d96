import FoundationEssentials

/// The encrypted credentials file of `--credentials encrypted-file:` and `authproxy seal`:
/// `base64(iv[16] || tag[16] || ciphertext)`, AES-256-GCM over the credentials JSON with no
/// additional data. The layout PHP integrations produce with `openssl_encrypt($json,
/// 'aes-256-gcm', $key, OPENSSL_RAW_DATA, $iv16, $tag)`, so their files open unchanged.
public enum SealedCredentials {
  static let headerLength = AES256GCM.ivLength + AES256GCM.tagLength

  /// Encrypts `plaintext` under a fresh random IV; the result is one line of base64 text.
  public static func seal(plaintext: [UInt8], key: EncryptionKey) throws(CryptoError) -> String {
    let iv = try AES256GCM.randomIV()
    let (ciphertext, tag) = try AES256GCM.seal(plaintext, key: key, iv: iv)
    return Data(iv + tag + ciphertext).base64EncodedString()
  }

  /// Decrypts sealed text (whitespace and line breaks anywhere are ignored). Throws
  /// `.malformed` for text not in the format and `.notAuthentic` for a wrong key or altered
  /// bytes; never returns unauthenticated bytes.
  public static func open(sealed: String, key: EncryptionKey) throws(CryptoError) -> [UInt8] {
    let compact = sealed.filter { !$0.isWhitespace }
    guard !compact.isEmpty else { throw CryptoError(.malformed, "the sealed text is empty") }
    guard let data = Data(base64Encoded: compact) else {
      throw CryptoError(.malformed, "the sealed text is not base64")
    }
    guard data.count > headerLength else {
      throw CryptoError(
        .malformed,
        "the sealed text holds \(data.count) bytes, too few for a \(AES256GCM.ivLength)-byte IV, a \(AES256GCM.tagLength)-byte tag and a ciphertext"
      )
    }
    let bytes = [UInt8](data)
    let iv = Array(bytes[0..<AES256GCM.ivLength])
    let tag = Array(bytes[AES256GCM.ivLength..<headerLength])
    let ciphertext = Array(bytes[headerLength...])
    return try AES256GCM.open(ciphertext, tag: tag, key: key, iv: iv)
  }
}

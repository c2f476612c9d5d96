import COpenSSL

/// AES-256-GCM over OpenSSL's EVP interface, with the parameters PHP's
/// `openssl_encrypt(…, 'aes-256-gcm', …)` uses when given a 16-byte IV: 16-byte IV, 16-byte
/// tag, no additional data. Shared by the sealed credentials format and the token store.
public enum AES256GCM {
  public static let ivLength = 16
  public static let tagLength = 16

  /// A fresh random IV (RAND_bytes).
  public static func randomIV() throws(CryptoError) -> [UInt8] {
    var iv = [UInt8](repeating: 0, count: ivLength)
    try check(RAND_bytes(&iv, Int32(ivLength)), "RAND_bytes")
    return iv
  }

  /// Encrypts `plaintext` under `key` and `iv` (16 bytes; never reuse one with the same key).
  public static func seal(_ plaintext: [UInt8], key: EncryptionKey, iv: [UInt8]) throws(CryptoError) -> (
    ciphertext: [UInt8], tag: [UInt8]
  ) {
    guard iv.count == ivLength else { throw CryptoError(.malformed, "the IV must be \(ivLength) bytes, not \(iv.count)") }
    guard plaintext.count < Int(Int32.max) - 64 else { throw CryptoError(.malformed, "the plaintext is too large") }
    let context = try CipherContext()
    try check(EVP_EncryptInit_ex(context.raw, EVP_aes_256_gcm(), nil, nil, nil), "EVP_EncryptInit_ex")
    // The IV length must be set before the key and IV: GCM's default is 12 bytes.
    try check(EVP_CIPHER_CTX_ctrl(context.raw, EVP_CTRL_GCM_SET_IVLEN, Int32(ivLength), nil), "EVP_CTRL_GCM_SET_IVLEN")
    try key.withBytes { (key) throws(CryptoError) in
      try check(EVP_EncryptInit_ex(context.raw, nil, nil, key, iv), "EVP_EncryptInit_ex (key)")
    }
    // GCM is a stream mode: the ciphertext is exactly as long as the plaintext.
    var ciphertext = [UInt8](repeating: 0, count: plaintext.count + 16)
    var written: Int32 = 0
    try check(EVP_EncryptUpdate(context.raw, &ciphertext, &written, plaintext, Int32(plaintext.count)), "EVP_EncryptUpdate")
    var finished: Int32 = 0
    let offset = Int(written)
    let final = ciphertext.withUnsafeMutableBufferPointer { EVP_EncryptFinal_ex(context.raw, $0.baseAddress! + offset, &finished) }
    try check(final, "EVP_EncryptFinal_ex")
    ciphertext.removeLast(ciphertext.count - offset - Int(finished))
    var tag = [UInt8](repeating: 0, count: tagLength)
    try check(EVP_CIPHER_CTX_ctrl(context.raw, EVP_CTRL_GCM_GET_TAG, Int32(tagLength), &tag), "EVP_CTRL_GCM_GET_TAG")
    return (ciphertext, tag)
  }

  /// Decrypts and authenticates. Nothing of the plaintext is returned unless the tag verifies.
  public static func open(_ ciphertext: [UInt8], tag: [UInt8], key: EncryptionKey, iv: [UInt8]) throws(CryptoError)
    -> [UInt8]
  {
    guard iv.count == ivLength else { throw CryptoError(.malformed, "the IV must be \(ivLength) bytes, not \(iv.count)") }
    // OpenSSL would accept a tag as short as 4 bytes; a truncated tag is a forgery made easier.
    guard tag.count == tagLength else {
      throw CryptoError(.malformed, "the tag must be \(tagLength) bytes, not \(tag.count)")
    }
    guard ciphertext.count < Int(Int32.max) - 64 else { throw CryptoError(.malformed, "the ciphertext is too large") }
    let context = try CipherContext()
    try check(EVP_DecryptInit_ex(context.raw, EVP_aes_256_gcm(), nil, nil, nil), "EVP_DecryptInit_ex")
    try check(EVP_CIPHER_CTX_ctrl(context.raw, EVP_CTRL_GCM_SET_IVLEN, Int32(ivLength), nil), "EVP_CTRL_GCM_SET_IVLEN")
    try key.withBytes { (key) throws(CryptoError) in
      try check(EVP_DecryptInit_ex(context.raw, nil, nil, key, iv), "EVP_DecryptInit_ex (key)")
    }
    var plaintext = [UInt8](repeating: 0, count: ciphertext.count + 16)
    var written: Int32 = 0
    let update = EVP_DecryptUpdate(context.raw, &plaintext, &written, ciphertext, Int32(ciphertext.count))
    guard update == 1 else {
      plaintext.wipe()
      ERR_clear_error()
      throw CryptoError(.library, "OpenSSL EVP_DecryptUpdate failed")
    }
    var expectedTag = tag
    try check(
      EVP_CIPHER_CTX_ctrl(context.raw, EVP_CTRL_GCM_SET_TAG, Int32(tagLength), &expectedTag), "EVP_CTRL_GCM_SET_TAG")
    // The authenticity check: DecryptFinal compares the computed tag with the expected one.
    var finished: Int32 = 0
    let offset = Int(written)
    let verified = plaintext.withUnsafeMutableBufferPointer { EVP_DecryptFinal_ex(context.raw, $0.baseAddress! + offset, &finished) }
    guard verified > 0 else {
      plaintext.wipe()
      ERR_clear_error()
      throw CryptoError(.notAuthentic, "authentication failed: a different key, or the data was altered")
    }
    let length = offset + Int(finished)
    // Shrinking in place keeps the one buffer; the tail beyond `length` was never written.
    plaintext.removeLast(plaintext.count - length)
    return plaintext
  }

  /// Every OpenSSL return code goes through here: 1 is success, anything else a thrown error.
  private static func check(_ result: Int32, _ what: String) throws(CryptoError) {
    guard result == 1 else {
      ERR_clear_error()
      throw CryptoError(.library, "OpenSSL \(what) failed")
    }
  }
}

/// One EVP_CIPHER_CTX, freed (and its key schedule cleansed by OpenSSL) when this goes away.
private final class CipherContext {
  let raw: OpaquePointer

  init() throws(CryptoError) {
    guard let raw = EVP_CIPHER_CTX_new() else { throw CryptoError(.library, "OpenSSL EVP_CIPHER_CTX_new failed") }
    self.raw = raw
  }

  deinit { EVP_CIPHER_CTX_free(raw) }
}

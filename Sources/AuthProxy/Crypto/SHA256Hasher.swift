import COpenSSL

/// Incremental SHA-256 over OpenSSL's EVP interface.
public final class SHA256Hasher {
  private let context: OpaquePointer

  public init() {
    context = EVP_MD_CTX_new()
    EVP_DigestInit_ex(context, EVP_sha256(), nil)
  }

  deinit { EVP_MD_CTX_free(context) }

  public func update<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
    let done: Void? = bytes.withContiguousStorageIfAvailable { buffer in
      _ = EVP_DigestUpdate(context, buffer.baseAddress, buffer.count)
    }
    if done == nil {
      let copy = Array(bytes)
      copy.withUnsafeBytes { _ = EVP_DigestUpdate(context, $0.baseAddress, $0.count) }
    }
  }

  /// The digest; the hasher must not be updated afterwards.
  public func finalize() -> [UInt8] {
    var digest = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    EVP_DigestFinal_ex(context, &digest, &length)
    return digest
  }

  public static func hash<Bytes: Collection>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
    let hasher = SHA256Hasher()
    hasher.update(bytes)
    return hasher.finalize()
  }
}

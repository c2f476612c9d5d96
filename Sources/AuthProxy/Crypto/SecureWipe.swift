import COpenSSL
import FoundationEssentials

extension Array where Element == UInt8 {
  /// Overwrites the bytes with zeros in a way the optimiser cannot drop (OPENSSL_cleanse), for
  /// buffers that held a password, a key or a plaintext. Only this array's own storage is
  /// wiped: copies made earlier keep their bytes, so wipe before handing a buffer on.
  public mutating func wipe() {
    guard !isEmpty else { return }
    withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) }
  }
}

extension Data {
  /// As `[UInt8].wipe()`, for the buffers Foundation's base64 and JSON coders hand back.
  mutating func wipe() {
    guard !isEmpty else { return }
    withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) }
  }
}

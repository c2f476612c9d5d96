import COpenSSL
import FoundationEssentials

/// The AES-256 key of `ENCRYPTION_KEY` (the base64 of exactly 32 random bytes), used for the
/// encrypted credentials file and the Redis token store. Prints as `<redacted>`; its bytes
/// live in memory of its own, wiped when the last copy goes away.
public final class EncryptionKey: @unchecked Sendable, CustomStringConvertible, CustomDebugStringConvertible,
  CustomReflectable
{
  // @unchecked: `bytes` is written once in init and only read afterwards; deinit runs when
  // no thread can hold the key any more.
  public static let byteCount = 32
  /// How to make a key, for every message about a bad one.
  public static let howToMakeOne = "make one with: openssl rand -base64 32"

  private let bytes: UnsafeMutableRawBufferPointer

  /// Parses the base64 text of `variable` (named in the messages, never quoted).
  public convenience init(base64 text: String, variable: String = "ENCRYPTION_KEY") throws(CryptoError) {
    let trimmed = text.filter { !$0.isWhitespace }
    guard !trimmed.isEmpty else {
      throw CryptoError(.invalidKey, "\(variable) is empty; \(EncryptionKey.howToMakeOne)")
    }
    guard var data = Data(base64Encoded: trimmed) else {
      throw CryptoError(.invalidKey, "\(variable) is not base64 text; \(EncryptionKey.howToMakeOne)")
    }
    defer { data.wipe() }
    guard data.count == EncryptionKey.byteCount else {
      throw CryptoError(
        .invalidKey,
        "\(variable) must be the base64 of exactly \(EncryptionKey.byteCount) bytes, it decodes to \(data.count); "
          + EncryptionKey.howToMakeOne)
    }
    try self.init(rawBytes: Array(data), variable: variable)
  }

  /// A key from its raw bytes (exactly 32).
  public init(rawBytes: [UInt8], variable: String = "ENCRYPTION_KEY") throws(CryptoError) {
    guard rawBytes.count == EncryptionKey.byteCount else {
      throw CryptoError(
        .invalidKey,
        "\(variable) must be exactly \(EncryptionKey.byteCount) bytes, not \(rawBytes.count); \(EncryptionKey.howToMakeOne)")
    }
    bytes = .allocate(byteCount: EncryptionKey.byteCount, alignment: 8)
    bytes.copyBytes(from: rawBytes)
  }

  deinit {
    OPENSSL_cleanse(bytes.baseAddress, bytes.count)
    bytes.deallocate()
  }

  /// The key bytes, for OpenSSL only; the pointer must not escape `body`.
  func withBytes<Result>(_ body: (UnsafePointer<UInt8>) throws(CryptoError) -> Result) throws(CryptoError) -> Result {
    try body(bytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
  }

  public var description: String { "<redacted>" }
  public var debugDescription: String { "<redacted>" }
  public var customMirror: Mirror { Mirror(self, children: []) }
}

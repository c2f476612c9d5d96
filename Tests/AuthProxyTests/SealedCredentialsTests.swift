import Foundation
import Testing

@testable import AuthProxy

// MARK: - Builders

/// Obviously fake key material: the bytes 0, 1, …, 31.
private let keyBase64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
private let otherKeyBase64 = Data(repeating: 0x5A, count: 32).base64EncodedString()
private let password = "not-a-real-password"
private let credentialsJSON = Array(#"{"username":"vector-user","password":"not-a-real-password"}"#.utf8)

/// Made once by Python's `cryptography` (AESGCM, key 00…1f, nonce a0…af, no AAD), output
/// rearranged from ciphertext||tag to iv||tag||ciphertext: the PHP layout.
private let pythonVector =
  "oKGio6SlpqeoqaqrrK2ur/3gCflaI4OzUAx1792sVUtRgVbPfb+jF677PYvPYujz9ioxVAtHNN7fPkjGeEZV8GPjgkGv8dHSmiRRj2on1pw3SsYRp3LCU4IbAw=="

private func key(_ base64: String = keyBase64) throws(CryptoError) -> EncryptionKey { try EncryptionKey(base64: base64) }

/// The `CryptoError` `body` threw (nil when it threw nothing, or something else).
private func cryptoError(_ body: () throws -> Void) -> CryptoError? {
  do {
    try body()
    return nil
  } catch {
    return error as? CryptoError
  }
}

/// The sealed text with one bit flipped at byte `offset` of the decoded bytes.
private func flippingBit(of sealed: String, at offset: Int) -> String {
  var bytes = [UInt8](Data(base64Encoded: sealed)!)
  bytes[offset] ^= 0x01
  return Data(bytes).base64EncodedString()
}

/// A description must never carry the key, in either form, nor the password.
private func isClean(_ text: String) -> Bool {
  !text.contains(keyBase64) && !text.contains(otherKeyBase64) && !text.contains(password)
}

/// Runs Python with `cryptography`, the independent implementation.
private struct Python {
  let launcher: [String]

  /// `python3` on PATH, then /usr/bin/python3: the first that can import `cryptography`.
  static func withCryptography() -> Python? {
    for launcher in [["/usr/bin/env", "python3"], ["/usr/bin/python3"]] {
      let candidate = Python(launcher: launcher)
      if let result = try? candidate.run("from cryptography.hazmat.primitives.ciphers.aead import AESGCM", []),
        result.status == 0
      {
        return candidate
      }
    }
    return nil
  }

  func run(_ script: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: launcher[0])
    process.arguments = Array(launcher.dropFirst()) + ["-c", script] + arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
  }

  /// Seals like a PHP integration would: AES-256-GCM, 16-byte IV, iv||tag||ciphertext.
  func seal(_ plaintext: [UInt8], keyBase64: String, iv: [UInt8]) throws -> String {
    let script = """
      import base64, sys
      from cryptography.hazmat.primitives.ciphers.aead import AESGCM
      key = base64.b64decode(sys.argv[1]); iv = bytes.fromhex(sys.argv[2]); pt = bytes.fromhex(sys.argv[3])
      out = AESGCM(key).encrypt(iv, pt, None)
      print(base64.b64encode(iv + out[-16:] + out[:-16]).decode())
      """
    let result = try run(script, [keyBase64, hex(iv), hex(plaintext)])
    #expect(result.status == 0)
    return result.output
  }

  /// Opens our sealed text; nil when Python refuses it.
  func open(_ sealed: String, keyBase64: String) throws -> [UInt8]? {
    let script = """
      import base64, sys
      from cryptography.hazmat.primitives.ciphers.aead import AESGCM
      key = base64.b64decode(sys.argv[1]); raw = base64.b64decode(sys.argv[2])
      iv, tag, ct = raw[:16], raw[16:32], raw[32:]
      print(AESGCM(key).decrypt(iv, ct + tag, None).hex())
      """
    let result = try run(script, [keyBase64, sealed])
    guard result.status == 0 else { return nil }
    return unhex(result.output)
  }

  private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
  private func unhex(_ text: String) -> [UInt8] {
    var result: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex, let next = text.index(index, offsetBy: 2, limitedBy: text.endIndex) {
      result.append(UInt8(text[index..<next], radix: 16) ?? 0)
      index = next
    }
    return result
  }
}

// MARK: - Specification

@Suite struct SealedCredentialsTests {

  @Test func sealThenOpenGivesThePlaintextBack() throws {
    let sealed = try SealedCredentials.seal(plaintext: credentialsJSON, key: key())
    #expect(try SealedCredentials.open(sealed: sealed, key: key()) == credentialsJSON)
  }

  @Test func sealedTextIsIVThenTagThenCiphertext() throws {
    let sealed = try SealedCredentials.seal(plaintext: credentialsJSON, key: key())
    let bytes = try #require(Data(base64Encoded: sealed))
    #expect(bytes.count == 16 + 16 + credentialsJSON.count)
    #expect(!sealed.contains("\n"))
  }

  @Test func everySealUsesAFreshIV() throws {
    let first = try SealedCredentials.seal(plaintext: credentialsJSON, key: key())
    let second = try SealedCredentials.seal(plaintext: credentialsJSON, key: key())
    #expect(first != second)
    #expect(Data(base64Encoded: first)!.prefix(16) != Data(base64Encoded: second)!.prefix(16))
  }

  @Test func lineBreaksAndSurroundingWhitespaceAreIgnored() throws {
    let sealed = try SealedCredentials.seal(plaintext: credentialsJSON, key: key())
    let wrapped = "  " + sealed.prefix(20) + "\n" + sealed.dropFirst(20) + "\r\n"
    #expect(try SealedCredentials.open(sealed: wrapped, key: key()) == credentialsJSON)
  }

  @Test func aWrongKeyFailsAsNotAuthentic() throws {
    let sealed = try SealedCredentials.seal(plaintext: credentialsJSON, key: key())
    let other = try key(otherKeyBase64)
    let error = try #require(cryptoError { _ = try SealedCredentials.open(sealed: sealed, key: other) })
    #expect(error.kind == .notAuthentic)
    #expect(error.description.contains("different key"))
    #expect(isClean(error.description))
  }

  @Test(arguments: [("iv", 0), ("iv", 15), ("tag", 16), ("tag", 31), ("ciphertext", 32), ("ciphertext", 40)])
  func oneFlippedBitFailsAsNotAuthentic(region: String, offset: Int) throws {
    let sealed = try SealedCredentials.seal(plaintext: credentialsJSON, key: key())
    let tampered = flippingBit(of: sealed, at: offset)
    let error = try #require(cryptoError { _ = try SealedCredentials.open(sealed: tampered, key: key()) }, "\(region)")
    #expect(error.kind == .notAuthentic)
    #expect(isClean(error.description))
  }

  @Test func textThatIsNotTheFormatIsMalformed() throws {
    let short = Data(repeating: 1, count: 32).base64EncodedString()
    for text in ["", "   \n", "not base64 at all!", short] {
      let error = try #require(cryptoError { _ = try SealedCredentials.open(sealed: text, key: key()) })
      #expect(error.kind == .malformed, "\(text)")
    }
  }

  @Test func aShortTagIsRefusedNotTruncated() throws {
    let iv = [UInt8](repeating: 7, count: 16)
    let (ciphertext, tag) = try AES256GCM.seal(credentialsJSON, key: key(), iv: iv)
    let error = try #require(
      cryptoError { _ = try AES256GCM.open(ciphertext, tag: Array(tag.prefix(12)), key: key(), iv: iv) })
    #expect(error.kind == .malformed)
    #expect(error.description.contains("16 bytes"))
  }

  @Test func onlyA16ByteIVIsAccepted() throws {
    let error = try #require(
      cryptoError { _ = try AES256GCM.seal(credentialsJSON, key: key(), iv: [UInt8](repeating: 0, count: 12)) })
    #expect(error.kind == .malformed)
  }

  @Test(arguments: [0, 16, 24, 31, 33, 64])
  func keysOfTheWrongLengthAreRefusedWithTheOpensslHint(length: Int) throws {
    let text = Data(repeating: 0x11, count: length).base64EncodedString()
    let error = try #require(cryptoError { _ = try EncryptionKey(base64: text) })
    #expect(error.kind == .invalidKey)
    #expect(error.description.contains("openssl rand -base64 32"))
    #expect(error.description.contains("ENCRYPTION_KEY"))
    if length > 0 {
      #expect(error.description.contains("decodes to \(length)"))
      #expect(!error.description.contains(text))
    }
  }

  @Test func aKeyThatIsNotBase64IsRefusedWithTheOpensslHint() throws {
    let error = try #require(cryptoError { _ = try EncryptionKey(base64: "this is not base64 !!") })
    #expect(error.kind == .invalidKey)
    #expect(error.description.contains("openssl rand -base64 32"))
  }

  @Test func aKeyPrintsAsRedacted() throws {
    let key = try key()
    #expect(String(describing: key) == "<redacted>")
    #expect(String(reflecting: key) == "<redacted>")
    var dumped = ""
    dump(key, to: &dumped)
    #expect(isClean(dumped))
  }

  @Test func opensAVectorMadeByPythonCryptography() throws {
    #expect(try SealedCredentials.open(sealed: pythonVector, key: key()) == credentialsJSON)
  }

  @Test func interoperatesWithPythonCryptographyBothWays() throws {
    guard let python = Python.withCryptography() else {
      Issue.record(
        "no python3 with the cryptography package (python3 on PATH, /usr/bin/python3); install python3-cryptography (scripts/install-deps)"
      )
      return
    }
    // Python seals, we open.
    let iv: [UInt8] = (0..<16).map { UInt8(0xC0 + $0) }
    let theirs = try python.seal(credentialsJSON, keyBase64: keyBase64, iv: iv)
    #expect(try SealedCredentials.open(sealed: theirs, key: key()) == credentialsJSON)
    // We seal, Python opens; and refuses with another key.
    let ours = try SealedCredentials.seal(plaintext: credentialsJSON, key: key())
    #expect(try python.open(ours, keyBase64: keyBase64) == credentialsJSON)
    #expect(try python.open(ours, keyBase64: otherKeyBase64) == nil)
  }
}

import ArgumentParser
import AuthProxy
import Glibc

/// Credentials JSON and sealed text are a few hundred bytes; more on stdin is the wrong input.
private let maxInput = 64 * 1024

struct Seal: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Encrypt a credentials JSON (stdin) with ENCRYPTION_KEY into the encrypted-file format (stdout).",
    discussion: """
      Reads {"username": "...", "password": "..."} (and optionally "rotated_at": an RFC 3339 time) \
      and writes base64(iv || tag || ciphertext), AES-256-GCM with a 16-byte IV: the layout PHP's \
      openssl_encrypt(..., 'aes-256-gcm', ...) produces, read by --credentials encrypted-file:PATH.
      ENCRYPTION_KEY is the base64 of 32 random bytes; make one with: openssl rand -base64 32
      Example: authproxy seal < credentials.json > credentials.sealed && chmod 600 credentials.sealed
      Exit codes: 0 sealed; 64 bad input or key.
      """)

  func run() throws {
    let key = try encryptionKey()
    var input = try readStandardInput()
    defer { input.wipe() }
    do {
      _ = try CredentialsDocument.decode(input, source: "authproxy seal", what: "stdin")
    } catch {
      printError(error.description)
      throw ExitCode(64)
    }
    let sealed: String
    do {
      sealed = try SealedCredentials.seal(plaintext: input, key: key)
    } catch {
      printError("authproxy seal: \(error.description)")
      throw ExitCode(1)
    }
    try writeStandardOutput(Array((sealed + "\n").utf8))
  }
}

struct Unseal: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Decrypt an encrypted credentials file (stdin) with ENCRYPTION_KEY and print its JSON (stdout).",
    discussion: """
      For checking a file made by `authproxy seal` or a PHP integration: the output holds the password.
      Example: authproxy unseal < credentials.sealed
      Exit codes: 0 opened and valid; 64 bad input or key; 1 cannot decrypt (another key, or the \
      file was altered), or the JSON inside would not load as credentials.
      """)

  func run() throws {
    let key = try encryptionKey()
    var input = try readStandardInput()
    defer { input.wipe() }
    var plaintext: [UInt8]
    do {
      plaintext = try SealedCredentials.open(sealed: String(decoding: input, as: UTF8.self), key: key)
    } catch {
      switch error.kind {
      case .notAuthentic:
        printError("authproxy unseal: cannot decrypt: ENCRYPTION_KEY is not the key it was sealed with, or the input was altered")
        throw ExitCode(1)
      default:
        printError("authproxy unseal: stdin is not a sealed credentials file: \(error.description)")
        throw ExitCode(64)
      }
    }
    defer { plaintext.wipe() }
    try writeStandardOutput(plaintext)
    if plaintext.last != UInt8(ascii: "\n") { try writeStandardOutput([UInt8(ascii: "\n")]) }
    do {
      _ = try CredentialsDocument.decode(plaintext, source: "authproxy unseal", what: "the sealed JSON")
    } catch {
      printError("\(error.description); --credentials encrypted-file: would refuse it")
      throw ExitCode(1)
    }
  }
}

/// The key from ENCRYPTION_KEY, or exit 64 saying how to make one (never quoting it).
private func encryptionKey() throws -> EncryptionKey {
  guard let text = processEnvironment()["ENCRYPTION_KEY"], !text.isEmpty else {
    printError("authproxy: ENCRYPTION_KEY is not set; \(EncryptionKey.howToMakeOne)")
    throw ExitCode(64)
  }
  do {
    return try EncryptionKey(base64: text)
  } catch {
    printError("authproxy: \(error.description)")
    throw ExitCode(64)
  }
}

/// All of stdin, up to `maxInput` bytes (exit 64 beyond).
private func readStandardInput() throws -> [UInt8] {
  var input: [UInt8] = []
  input.reserveCapacity(maxInput + 1)
  var chunk = [UInt8](repeating: 0, count: 4096)
  defer { chunk.wipe() }
  while true {
    let count = read(0, &chunk, chunk.count)
    if count < 0 {
      if errno == EINTR { continue }
      input.wipe()
      printError("authproxy: cannot read stdin: \(String(cString: strerror(errno)))")
      throw ExitCode(64)
    }
    if count == 0 { break }
    guard input.count + count <= maxInput else {
      input.wipe()
      printError("authproxy: stdin is larger than \(maxInput) bytes; give the credentials JSON or the sealed text")
      throw ExitCode(64)
    }
    input.append(contentsOf: chunk[0..<count])
  }
  return input
}

/// Writes all of `bytes` to fd 1, or exits 1 saying why (a full disk must not leave a
/// truncated file that looks sealed).
private func writeStandardOutput(_ bytes: [UInt8]) throws {
  var offset = 0
  while offset < bytes.count {
    let written = bytes[offset...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    if written < 0 {
      if errno == EINTR { continue }
      printError("authproxy: cannot write stdout: \(String(cString: strerror(errno)))")
      throw ExitCode(1)
    }
    offset += written
  }
}

import Foundation
import Glibc
import Testing

@testable import AuthProxy
import TestSupport

// MARK: - Builders

private let vaultToken = "hvs.FAKE-token-for-tests"
private let password = "fake-vault-password"

/// What the fake Vault serves, by request path: status and JSON body.
private let secrets: [String: (Int, String)] = [
  "/v1/secret/authproxy": (
    200,
    #"{"request_id":"1","lease_id":"","renewable":false,"lease_duration":2764800,"data":{"username":"integration","password":"\#(password)"},"wrap_info":null,"warnings":null,"auth":null}"#
  ),
  "/v1/secret/data/authproxy": (
    200,
    #"{"request_id":"2","lease_id":"","renewable":false,"lease_duration":0,"data":{"data":{"username":"integration","password":"\#(password)"},"metadata":{"created_time":"2026-01-02T03:04:05.123456789Z","custom_metadata":null,"deletion_time":"","destroyed":false,"version":3}},"wrap_info":null,"warnings":null,"auth":null}"#
  ),
  "/v1/secret/data/rotated": (
    200,
    #"{"data":{"data":{"username":"integration","password":"\#(password)","rotated_at":"2026-01-31T12:00:00Z"},"metadata":{"created_time":"2026-02-01T00:00:00Z","version":1}}}"#
  ),
  "/v1/secret/data/incomplete": (
    200, #"{"data":{"data":{"username":"integration"},"metadata":{"created_time":"2026-02-01T00:00:00Z","version":1}}}"#
  ),
  "/v1/secret/garbage": (200, "<html>not vault</html>"),
  "/v1/secret/sealed": (503, #"{"errors":["Vault is sealed"]}"#),
]

/// A fake Vault on loopback plain HTTP (or TLS): answers a GET from `secrets` when
/// `X-Vault-Token` is right, 403 when it is not.
private func fakeVault(tls: TLSServerContext? = nil) throws -> LoopbackHTTPServer {
  try LoopbackHTTPServer(tls: tls, name: "fake-vault") { request in
    let (status, body) =
      request.header("X-Vault-Token") == vaultToken
      ? secrets[request.target] ?? (404, #"{"errors":[]}"#) : (403, #"{"errors":["permission denied"]}"#)
    return .init(status: status, headers: [("Content-Type", "application/json")], body: body)
  }
}

private func environment(_ address: String, token: String? = vaultToken, extra: [String: String] = [:]) -> [String: String] {
  var result = ["VAULT_ADDR": address]
  if let token { result["VAULT_TOKEN"] = token }
  return result.merging(extra) { _, new in new }
}

private func loadError(_ path: String, _ environment: [String: String]) -> CredentialError? {
  do throws(CredentialError) {
    _ = try CredentialSource.load(.vault(path: path), environment: environment)
    return nil
  } catch {
    return error
  }
}

private func isClean(_ error: CredentialError) -> Bool {
  var dumped = ""
  dump(error, to: &dumped)
  return [error.description, dumped].allSatisfy { !$0.contains(password) && !$0.contains(vaultToken) }
}

/// A loopback port with nothing listening on it.
private func closedPort() throws -> Int {
  let (fd, port) = try ListeningSocket.bind(host: "127.0.0.1", port: 0, reusePort: false)
  close(fd)
  return port
}

private func scratchFile(_ text: String) -> String {
  let path = temporaryDirectory("authproxy-vault") + "/token"
  _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
  chmod(path, 0o640)
  return path
}

// MARK: - Specification

@Suite struct CredentialVaultTests {

  @Test func readsAKVv1Secret() throws {
    let vault = try fakeVault()
    defer { vault.stop() }
    let credentials = try CredentialSource.load(.vault(path: "secret/authproxy"), environment: environment(vault.url()))
    #expect(credentials.username == "integration")
    #expect(credentials.password.reveal == password)
    #expect(credentials.rotatedAt == nil)
    let seen = vault.requests
    #expect(seen.count == 1)
    #expect(seen.first?.target == "/v1/secret/authproxy")
    #expect(seen.first?.header("X-Vault-Token") == vaultToken)
  }

  @Test func readsAKVv2SecretWithItsVersionTimeAsRotation() throws {
    let vault = try fakeVault()
    defer { vault.stop() }
    let credentials = try CredentialSource.load(
      .vault(path: "/secret/data/authproxy"), environment: environment(vault.url() + "/"))
    #expect(credentials.username == "integration")
    #expect(credentials.password.reveal == password)
    let rotatedAt = try #require(credentials.rotatedAt)
    #expect(abs(rotatedAt - 1_767_323_045.123) < 0.001)
    #expect(vault.requests.first?.target == "/v1/secret/data/authproxy")
  }

  @Test func aRotatedAtInTheSecretWins() throws {
    let vault = try fakeVault()
    defer { vault.stop() }
    let credentials = try CredentialSource.load(.vault(path: "secret/data/rotated"), environment: environment(vault.url()))
    #expect(credentials.rotatedAt == 1_769_860_800)
  }

  @Test func readsTheTokenFromVAULT_TOKEN_FILE() throws {
    let vault = try fakeVault()
    defer { vault.stop() }
    let file = scratchFile(vaultToken + "\n")
    let credentials = try CredentialSource.load(
      .vault(path: "secret/authproxy"), environment: environment(vault.url(), token: nil, extra: ["VAULT_TOKEN_FILE": file]))
    #expect(credentials.password.reveal == password)
    #expect(vault.requests.first?.header("X-Vault-Token") == vaultToken)
  }

  @Test func aRefusedTokenIsInvalidAndNotQuoted() throws {
    let vault = try fakeVault()
    defer { vault.stop() }
    let error = try #require(loadError("secret/authproxy", environment(vault.url(), token: "hvs.FAKE-wrong-token")))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("refused the token (HTTP 403)"))
    #expect(!error.description.contains("hvs.FAKE-wrong-token"))
    #expect(isClean(error))
  }

  @Test func aMissingSecretHintsAtTheKVv2Path() throws {
    let vault = try fakeVault()
    defer { vault.stop() }
    let error = try #require(loadError("kv/authproxy", environment(vault.url())))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("HTTP 404"))
    #expect(error.description.contains("data/"))
  }

  @Test func aSecretWithoutPasswordIsNamed() throws {
    let vault = try fakeVault()
    defer { vault.stop() }
    let error = try #require(loadError("secret/data/incomplete", environment(vault.url())))
    #expect(error.description.contains("the Vault secret at secret/data/incomplete: password is missing or empty"))
  }

  @Test func anAnswerThatIsNotJSONIsInvalid() throws {
    let vault = try fakeVault()
    defer { vault.stop() }
    let error = try #require(loadError("secret/garbage", environment(vault.url())))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("not JSON"))
  }

  @Test func aSealedVaultIsUnreachable() throws {
    let vault = try fakeVault()
    defer { vault.stop() }
    let error = try #require(loadError("secret/sealed", environment(vault.url())))
    #expect(error.kind == .unreachable)
    #expect(error.description.contains("HTTP 503"))
  }

  @Test func aVaultThatIsDownIsUnreachable() throws {
    let error = try #require(loadError("secret/authproxy", environment("http://127.0.0.1:\(try closedPort())")))
    #expect(error.kind == .unreachable)
    #expect(error.description.contains("cannot reach Vault"))
    #expect(error.description.contains("--credentials vault:secret/authproxy"))
    #expect(isClean(error))
  }

  @Test func aMissingVAULT_ADDRIsNamed() throws {
    let error = try #require(loadError("secret/authproxy", ["VAULT_TOKEN": vaultToken]))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("VAULT_ADDR is not set"))
    #expect(isClean(error))
  }

  @Test func aMissingTokenNamesBothVariables() throws {
    let error = try #require(loadError("secret/authproxy", environment("http://127.0.0.1:8200", token: nil)))
    #expect(error.description.contains("VAULT_TOKEN"))
    #expect(error.description.contains("VAULT_TOKEN_FILE"))
  }

  @Test func anEmptyTokenFileIsNamed() throws {
    let file = scratchFile("\n")
    let error = try #require(
      loadError("secret/authproxy", environment("http://127.0.0.1:8200", token: nil, extra: ["VAULT_TOKEN_FILE": file])))
    #expect(error.description.contains("VAULT_TOKEN_FILE \(file) is empty"))
  }

  @Test(arguments: ["http://vault.example.com:8200", "http://10.0.0.5:8200", "http://[2001:db8::1]:8200"])
  func plainHTTPIsRefusedUnlessLoopback(address: String) throws {
    let error = try #require(loadError("secret/authproxy", environment(address)))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("use https"))
  }

  @Test(arguments: ["http://127.0.0.1:8200", "http://localhost:8200", "http://[::1]:8200", "https://vault.example.com"])
  func httpsAndLoopbackHTTPAreAccepted(address: String) throws {
    guard case .success = VaultAddress.parse(address) else {
      Issue.record("\(address) was refused")
      return
    }
  }

  @Test(arguments: ["vault.example.com:8200", "ftp://vault", "https://user:secret@vault.example.com", "https://"])
  func addressesThatAreNotVaultURLsAreRefused(address: String) throws {
    let error = try #require(loadError("secret/authproxy", environment(address)))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("VAULT_ADDR"))
    #expect(!error.description.contains("user:secret"))
  }

  @Test(arguments: ["secret/../sys/raw", "secret//x", "secret/x?list=true", "secret/a b", "/"])
  func pathsThatAreNotSecretPathsAreRefused(path: String) throws {
    let error = try #require(loadError(path, environment("http://127.0.0.1:8200")))
    #expect(error.description.contains("not a Vault secret path"))
  }

  @Test func httpsIsVerifiedWithVAULT_CACERT() throws {
    let directory = temporaryDirectory("authproxy-vault-pki")
    try ThrowawayPKI.make(in: directory, caName: "fake vault CA")
    let tls = try TLSServerContext(certificatePath: directory + "/server.pem", keyPath: directory + "/server-key.pem")
    let vault = try fakeVault(tls: tls)
    defer { vault.stop() }
    let address = "https://127.0.0.1:\(vault.port)"

    let untrusted = try #require(loadError("secret/authproxy", environment(address)))
    #expect(untrusted.kind == .invalid)
    #expect(untrusted.description.contains("not trusted"))
    #expect(untrusted.description.contains("VAULT_CACERT"))

    let credentials = try CredentialSource.load(
      .vault(path: "secret/authproxy"), environment: environment(address, extra: ["VAULT_CACERT": directory + "/ca.pem"]))
    #expect(credentials.password.reveal == password)
  }

  @Test func anUnreadableCACertIsNamed() throws {
    let error = try #require(
      loadError("secret/authproxy", environment("https://vault.example.com", extra: ["VAULT_CACERT": "/nonexistent/ca.pem"])))
    #expect(error.kind == .invalid)
    #expect(error.description.contains("VAULT_CACERT /nonexistent/ca.pem"))
  }
}

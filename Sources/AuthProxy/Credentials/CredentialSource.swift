/// Loads the credentials from the source named by `--credentials`, once at start-up and
/// again on each rotation. Blocking: call it on a thread that may wait (Vault is a network
/// round trip). `environment` is the process environment, read once by the caller.
public enum CredentialSource {
  public static func load(_ spec: CredentialSpec, environment: [String: String]) throws(CredentialError) -> Credentials {
    let source = "--credentials \(spec)"
    switch spec {
    case .env:
      return try fromEnvironment(environment, spec: spec)
    case .file(let path):
      var file = try CredentialFile.read(path, ownerOnly: true, source: source)
      defer { file.contents.wipe() }
      return try CredentialsDocument.decode(file.contents, source: source, what: "the file", fallbackRotatedAt: file.modifiedAt)
    case .encryptedFile(let path):
      let key = try encryptionKey(environment, spec: spec)
      var file = try CredentialFile.read(path, ownerOnly: true, source: source)
      defer { file.contents.wipe() }
      var plaintext: [UInt8]
      do {
        plaintext = try SealedCredentials.open(sealed: String(decoding: file.contents, as: UTF8.self), key: key)
      } catch {
        switch error.kind {
        case .notAuthentic:
          throw CredentialError(
            .invalid, spec,
            "cannot decrypt \(path): ENCRYPTION_KEY is not the key it was sealed with, or the file was altered")
        default:
          throw CredentialError(
            .invalid, spec,
            "\(path) is not a sealed credentials file (\(error.description)); make one with: authproxy seal < credentials.json")
        }
      }
      defer { plaintext.wipe() }
      return try CredentialsDocument.decode(
        plaintext, source: source, what: "the sealed JSON", fallbackRotatedAt: file.modifiedAt)
    case .vault(let path):
      return try VaultSource.load(path: path, environment: environment, spec: spec)
    }
  }

  private static func fromEnvironment(_ environment: [String: String], spec: CredentialSpec) throws(CredentialError)
    -> Credentials
  {
    let username = environment["API_USERNAME"] ?? ""
    let password = environment["API_PASSWORD"] ?? ""
    var missing: [String] = []
    if username.isEmpty { missing.append("API_USERNAME") }
    if password.isEmpty { missing.append("API_PASSWORD") }
    guard missing.isEmpty else {
      throw CredentialError(
        .invalid, spec,
        "\(missing.joined(separator: " and ")) \(missing.count == 1 ? "is" : "are") not set; "
          + "export API_USERNAME and API_PASSWORD with the integration's login")
    }
    return Credentials(username: username, password: Secret(password))
  }

  private static func encryptionKey(_ environment: [String: String], spec: CredentialSpec) throws(CredentialError)
    -> EncryptionKey
  {
    guard let text = environment["ENCRYPTION_KEY"], !text.isEmpty else {
      throw CredentialError(
        .invalid, spec, "ENCRYPTION_KEY is not set; export the key the file was sealed with (base64 of 32 bytes)")
    }
    do {
      return try EncryptionKey(base64: text)
    } catch {
      throw CredentialError(.invalid, spec, error.description)
    }
  }
}

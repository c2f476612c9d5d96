/// Loads the credentials from the source named by `--credentials`, once at start-up and
/// again on each rotation. Blocking: call it on a thread that may wait (Vault is a network
/// round trip). `environment` is the process environment, read once by the caller.
public enum CredentialSource {
  public static func load(_ spec: CredentialSpec, environment: [String: String], database: DatabaseSettings? = nil)
    throws(CredentialError) -> Credentials
  {
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
      return try openSealed(
        String(decoding: file.contents, as: UTF8.self), key: key, spec: spec, what: path, sealedNoun: "a sealed credentials file",
        notSealedFix: "make one with: authproxy seal < credentials.json", fallbackRotatedAt: file.modifiedAt)
    case .vault(let path):
      return try VaultSource.load(path: path, environment: environment, spec: spec)
    case .database(let id):
      guard let database else {
        throw CredentialError(
          .invalid, spec,
          "--database-url is not set; give the database's URL (or AUTHPROXY_DATABASE_URL), e.g. postgres://authproxy@db.example.com/app")
      }
      return try DatabaseSource.load(id: id, settings: database, environment: environment, spec: spec)
    }
  }

  /// Opens sealed text (`authproxy seal` output, wherever it is stored) and decodes the JSON in
  /// it: the one decryption of `encrypted-file:` and `db:`. `what` names where the text came from.
  static func openSealed(
    _ sealed: String, key: EncryptionKey, spec: CredentialSpec, what: String, sealedNoun: String = "sealed credentials",
    notSealedFix: String, fallbackRotatedAt: Double?
  ) throws(CredentialError) -> Credentials {
    var plaintext: [UInt8]
    do {
      plaintext = try SealedCredentials.open(sealed: sealed, key: key)
    } catch {
      switch error.kind {
      case .notAuthentic:
        throw CredentialError(
          .invalid, spec,
          "cannot decrypt \(what): ENCRYPTION_KEY is not the key it was sealed with, or the sealed text was altered")
      default:
        throw CredentialError(.invalid, spec, "\(what) is not \(sealedNoun) (\(error.description)); \(notSealedFix)")
      }
    }
    defer { plaintext.wipe() }
    return try CredentialsDocument.decode(
      plaintext, source: "--credentials \(spec)", what: "the sealed JSON", fallbackRotatedAt: fallbackRotatedAt)
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

  static func encryptionKey(_ environment: [String: String], spec: CredentialSpec) throws(CredentialError)
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

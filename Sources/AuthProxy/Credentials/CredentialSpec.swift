/// Where credentials come from (`--credentials`): SPEC §3.
public enum CredentialSpec: Sendable, Equatable, CustomStringConvertible {
  /// `API_USERNAME` and `API_PASSWORD`.
  case env
  /// A JSON file `{"username","password"[,"rotated_at"]}`, mode 0600 or 0400.
  case file(path: String)
  /// The same JSON sealed with AES-256-GCM under `ENCRYPTION_KEY` (see `SealedCredentials`).
  case encryptedFile(path: String)
  /// A Vault KV (v1 or v2) secret at `VAULT_ADDR/v1/PATH`.
  case vault(path: String)
  /// The active row `ID` of `api_credentials` in the database of `--database-url`, holding the
  /// same sealed text as an `encrypted-file:` (see `DatabaseSource`).
  case database(id: String)

  /// Parses the flag's value; nil when it names no source (or no path).
  public static func parse(_ text: String) -> CredentialSpec? {
    if text == "env" { return .env }
    for (prefix, make) in [
      ("file:", CredentialSpec.file), ("encrypted-file:", CredentialSpec.encryptedFile), ("vault:", CredentialSpec.vault),
      ("db:", CredentialSpec.database),
    ] where text.hasPrefix(prefix) {
      let path = String(text.dropFirst(prefix.count))
      // An id goes to the database as a query parameter, never into the SQL; it is echoed in
      // messages, so no control characters.
      if prefix == "db:", path.utf8.count > 256 || path.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return nil }
      return path.isEmpty ? nil : make(path)
    }
    return nil
  }

  /// The flag's value, as a user wrote it.
  public var description: String {
    switch self {
    case .env: "env"
    case .file(let path): "file:\(path)"
    case .encryptedFile(let path): "encrypted-file:\(path)"
    case .vault(let path): "vault:\(path)"
    case .database(let id): "db:\(id)"
    }
  }

  /// The file whose changes mean new credentials (`file:` and `encrypted-file:`), for the
  /// rotation watcher; nil for the other sources.
  public var watchedFile: String? {
    switch self {
    case .file(let path), .encryptedFile(let path): path
    case .env, .vault, .database: nil
    }
  }

  /// The sources `--credentials` accepts, for help and error messages.
  public static let forms = "env, file:PATH, encrypted-file:PATH, vault:PATH or db:ID"
}

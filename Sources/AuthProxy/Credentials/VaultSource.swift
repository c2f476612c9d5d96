import CCurl
import FoundationEssentials
import Glibc

/// `--credentials vault:PATH`: one GET of `VAULT_ADDR/v1/PATH` with `X-Vault-Token`, at
/// start-up and on each rotation. Accepts KV v1 (`data.username`) and KV v2
/// (`data.data.username`) answers. A blocking curl easy request: it runs before the event
/// loops start, or on a thread that may wait.
enum VaultSource {
  /// A KV secret is a few hundred bytes; the cap bounds what a confused server can make us hold.
  static let maxAnswer = 1 << 20
  static let connectTimeoutMs = 10_000
  static let totalTimeoutMs = 30_000

  static func load(path rawPath: String, environment: [String: String], spec: CredentialSpec) throws(CredentialError)
    -> Credentials
  {
    func invalid(_ reason: String) -> CredentialError { CredentialError(.invalid, spec, reason) }

    guard let addressText = environment["VAULT_ADDR"], !addressText.isEmpty else {
      throw invalid("VAULT_ADDR is not set; export the Vault server's address, e.g. https://vault.example.com:8200")
    }
    let address: VaultAddress
    switch VaultAddress.parse(addressText) {
    case .success(let parsed): address = parsed
    case .failure(let problem): throw invalid("VAULT_ADDR \(problem.reason)")
    }
    let path = String(rawPath.drop { $0 == "/" })
    let segments = path.split(separator: "/", omittingEmptySubsequences: false)
    guard !path.isEmpty, !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }),
      !path.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F || "?#%\\".unicodeScalars.contains($0) })
    else {
      throw invalid("'\(rawPath)' is not a Vault secret path; write it like vault:secret/data/authproxy")
    }
    let token = try vaultToken(environment, spec: spec)
    var caFile: String?
    if let ca = environment["VAULT_CACERT"], !ca.isEmpty {
      guard access(ca, R_OK) == 0 else {
        throw invalid("cannot read VAULT_CACERT \(ca) (\(String(cString: strerror(errno)))); give a readable PEM file")
      }
      caFile = ca
    }
    var headers = ["X-Vault-Token: \(token.reveal)", "X-Vault-Request: true", "Accept: application/json"]
    // Vault Enterprise namespaces, as the Vault CLI and Agent read them.
    if let namespace = environment["VAULT_NAMESPACE"], !namespace.isEmpty {
      guard isHeaderSafe(namespace) else { throw invalid("VAULT_NAMESPACE contains spaces or control characters") }
      headers.append("X-Vault-Namespace: \(namespace)")
    }

    var answer = try get("\(address.base)/v1/\(path)", headers: headers, address: address, caFile: caFile, spec: spec)
    defer { answer.body.wipe() }
    switch answer.status {
    case 200:
      break
    case 401, 403:
      throw invalid(
        "Vault refused the token (HTTP \(answer.status)): check that it is valid and that its policy allows read on \(path)"
      )
    case 404:
      throw invalid(
        "Vault has no secret at \(path) (HTTP 404); on a KV v2 engine the path includes data/, e.g. vault:secret/data/authproxy"
      )
    case 300..<400:
      throw invalid("Vault answered with a redirect (HTTP \(answer.status)); point VAULT_ADDR at the active node")
    case 429, 500..<600:
      throw CredentialError(
        .unreachable, spec,
        "Vault at \(address.base) answered HTTP \(answer.status) (sealed, in standby or overloaded); try again when it is unsealed and active"
      )
    default:
      throw invalid("Vault answered HTTP \(answer.status) for \(path)")
    }
    return try credentials(from: answer.body, path: path, spec: spec)
  }

  /// `VAULT_TOKEN`, else the first line of the file named by `VAULT_TOKEN_FILE` (a Vault Agent
  /// sink, a mounted secret: not permission-checked, since those are often group-readable).
  private static func vaultToken(_ environment: [String: String], spec: CredentialSpec) throws(CredentialError) -> Secret {
    let token: String
    if let value = environment["VAULT_TOKEN"], !value.isEmpty {
      token = value.trimmingASCIIWhitespace()
      guard !token.isEmpty else { throw CredentialError(.invalid, spec, "VAULT_TOKEN is blank") }
    } else if let file = environment["VAULT_TOKEN_FILE"], !file.isEmpty {
      var contents = try CredentialFile.read(file, ownerOnly: false, source: "--credentials \(spec)").contents
      defer { contents.wipe() }
      token = String(decoding: contents, as: UTF8.self).trimmingASCIIWhitespace()
      guard !token.isEmpty else { throw CredentialError(.invalid, spec, "VAULT_TOKEN_FILE \(file) is empty") }
    } else {
      throw CredentialError(
        .invalid, spec,
        "neither VAULT_TOKEN nor VAULT_TOKEN_FILE is set; export the Vault token, or the path of a file holding it")
    }
    // The token goes into a header line: a line break in it would add headers of its own.
    guard isHeaderSafe(token) else {
      throw CredentialError(.invalid, spec, "the Vault token contains spaces or control characters")
    }
    return Secret(token)
  }

  private static func isHeaderSafe(_ text: String) -> Bool {
    text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
  }

  /// The secret's fields: KV v2 nests them under `data.data` (with the version's metadata
  /// beside them), KV v1 puts them under `data`.
  private static func credentials(from body: [UInt8], path: String, spec: CredentialSpec) throws(CredentialError)
    -> Credentials
  {
    let what = "the Vault secret at \(path)"
    var data = Data(body)
    defer { data.wipe() }
    guard let answer = try? JSONDecoder().decode(KVAnswer.self, from: data) else {
      throw CredentialError(.invalid, spec, "Vault's answer for \(path) is not JSON")
    }
    guard let fields = answer.fields else {
      throw CredentialError(.invalid, spec, "Vault's answer for \(path) has no data object")
    }
    // A KV v2 version's creation time is when the secret was last written: the password's age
    // when the secret itself carries no rotated_at.
    let written = answer.createdTime.flatMap(RFC3339.parse)
    switch fields.credentials(fallbackRotatedAt: written) {
    case .success(let credentials): return credentials
    case .failure(let problem): throw CredentialError(.invalid, spec, what + problem.predicate)
    }
  }

  private struct KVAnswer: Decodable {
    var fields: CredentialsDocument.Fields?
    var createdTime: String?

    private enum Top: String, CodingKey { case data }
    private enum Inner: String, CodingKey { case data, metadata, username, password }
    private enum Metadata: String, CodingKey { case createdTime = "created_time" }

    init(from decoder: any Decoder) throws {
      let top = try decoder.container(keyedBy: Top.self)
      guard let data = try? top.nestedContainer(keyedBy: Inner.self, forKey: .data) else { return }
      let v1 = try? top.decode(CredentialsDocument.Fields.self, forKey: .data)
      // A KV v1 secret that happens to have a "data" member is still v1 when it has the fields.
      if !data.contains(.username), !data.contains(.password),
        let v2 = try? data.decode(CredentialsDocument.Fields.self, forKey: .data)
      {
        fields = v2
        createdTime = try? data.nestedContainer(keyedBy: Metadata.self, forKey: .metadata).decode(
          String.self, forKey: .createdTime)
      } else {
        fields = v1
      }
    }
  }

  /// One blocking GET. Transport failures become errors here: `.unreachable` for the network,
  /// `.invalid` for trust problems, which only a configuration change fixes.
  private static func get(_ url: String, headers: [String], address: VaultAddress, caFile: String?, spec: CredentialSpec)
    throws(CredentialError) -> BlockingGet.Response
  {
    let request = BlockingGet(
      url: url, headerLines: headers, allowPlainHTTP: !address.isHTTPS, caFile: caFile, connectTimeoutMs: connectTimeoutMs,
      totalTimeoutMs: totalTimeoutMs, maxBody: maxAnswer)
    switch request.perform() {
    case .success(let response):
      return response
    case .failure(let failure):
      switch failure.code {
      case CURLE_WRITE_ERROR where failure.bodyTooLarge:
        throw CredentialError(.invalid, spec, "Vault's answer is larger than \(maxAnswer) bytes; is VAULT_ADDR a Vault server?")
      case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM:
        throw CredentialError(
          .invalid, spec,
          "Vault's certificate at \(address.base) is not trusted (\(failure.detail)); set VAULT_CACERT to the CA that signed it")
      case CURLE_SSL_CACERT_BADFILE:
        throw CredentialError(.invalid, spec, "VAULT_CACERT \(caFile ?? "") is not a usable PEM file (\(failure.detail))")
      default:
        throw CredentialError(.unreachable, spec, "cannot reach Vault at \(address.base): \(failure.detail)")
      }
    }
  }
}

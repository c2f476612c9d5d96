import FoundationEssentials

/// The credentials JSON shared by `file:`, `encrypted-file:`, `vault:` and `authproxy seal`:
/// `{"username": "...", "password": "...", "rotated_at": "2026-01-31T12:00:00Z"}` with
/// `rotated_at` optional. Other members are ignored.
public enum CredentialsDocument {
  /// The members as found, each nil when absent; a member of the wrong type is recorded by
  /// name, so the message can say which without quoting any value.
  struct Fields: Decodable {
    var username: String?
    var password: String?
    var rotatedAt: String?
    var wrongTypes: [String] = []

    private enum Key: String, CodingKey {
      case username, password
      case rotatedAt = "rotated_at"
    }

    init(from decoder: any Decoder) throws {
      let container = try decoder.container(keyedBy: Key.self)
      var wrong: [String] = []
      func string(_ key: Key) -> String? {
        guard container.contains(key) else { return nil }
        guard let value = try? container.decode(String.self, forKey: key) else {
          wrong.append(key.rawValue)
          return nil
        }
        return value
      }
      username = string(.username)
      password = string(.password)
      rotatedAt = string(.rotatedAt)
      wrongTypes = wrong
    }

    /// The credentials, or why not (a reason that quotes no value).
    func credentials(fallbackRotatedAt: Double?) -> Result<Credentials, Problem> {
      if !wrongTypes.isEmpty {
        return .failure(Problem(": \(wrongTypes.joined(separator: " and ")) must be a string"))
      }
      var missing: [String] = []
      if (username ?? "").isEmpty { missing.append("username") }
      if (password ?? "").isEmpty { missing.append("password") }
      if !missing.isEmpty {
        return .failure(
          Problem(": \(missing.joined(separator: " and ")) \(missing.count == 1 ? "is" : "are") missing or empty"))
      }
      var rotated = fallbackRotatedAt
      if let text = rotatedAt {
        guard let parsed = RFC3339.parse(text) else {
          return .failure(Problem(": rotated_at is not an RFC 3339 timestamp (like 2026-01-31T12:00:00Z)"))
        }
        rotated = parsed
      }
      return .success(Credentials(username: username!, password: Secret(password!), rotatedAt: rotated))
    }
  }

  /// The second half of a sentence whose subject the caller supplies ("the file", "stdin").
  struct Problem: Error {
    let predicate: String
    init(_ predicate: String) { self.predicate = predicate }
  }

  /// Decodes and validates credentials JSON. `fallbackRotatedAt` (a file's mtime) is used
  /// when the JSON has no `rotated_at`. Errors are attributed to `source`, call the JSON
  /// `what` ("the file", "stdin") and never quote its content.
  public static func decode(_ json: [UInt8], source: String, what: String, fallbackRotatedAt: Double? = nil)
    throws(CredentialError) -> Credentials
  {
    let result = decodeFields(json).flatMap { $0.credentials(fallbackRotatedAt: fallbackRotatedAt) }
    switch result {
    case .success(let credentials): return credentials
    case .failure(let problem): throw CredentialError(.invalid, source: source, what + problem.predicate)
    }
  }

  /// The members of a JSON object, or why the bytes are not one. The decoder's own messages
  /// are not passed on: they can quote the text around a syntax error, i.e. the password.
  static func decodeFields(_ json: [UInt8]) -> Result<Fields, Problem> {
    var data = Data(json)
    defer { data.wipe() }
    do {
      return .success(try JSONDecoder().decode(Fields.self, from: data))
    } catch DecodingError.typeMismatch {
      return .failure(Problem(#" is not a JSON object; write {"username": "...", "password": "..."}"#))
    } catch {
      return .failure(Problem(#" is not valid JSON; write {"username": "...", "password": "..."}"#))
    }
  }
}

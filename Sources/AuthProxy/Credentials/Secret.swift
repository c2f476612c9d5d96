/// A password, token or key. Printing, interpolating or dumping one shows `<redacted>`;
/// only `reveal` gives the value, and only the code that must send it calls that.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
  private let value: String

  public init(_ value: String) { self.value = value }

  /// The secret itself, for the one place that puts it on the wire.
  public var reveal: String { value }
  public var isEmpty: Bool { value.isEmpty }

  public var description: String { "<redacted>" }
  public var debugDescription: String { "<redacted>" }
  public var customMirror: Mirror { Mirror(self, children: []) }
}

/// The integration's identity at the API.
public struct Credentials: Sendable, Equatable {
  public var username: String
  public var password: Secret
  public init(username: String, password: Secret) {
    self.username = username
    self.password = password
  }
}

/// Where credentials come from (`--credentials`).
public enum CredentialSpec: Sendable, Equatable {
  case env

  /// Parses the flag's value.
  public static func parse(_ text: String) -> CredentialSpec? {
    switch text {
    case "env": return .env
    default: return nil
    }
  }
}

/// Why credentials could not be had.
public struct CredentialError: Error, Sendable, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}

/// Loads credentials from the source named by `--credentials`.
public enum CredentialSource {
  public static func load(_ spec: CredentialSpec, environment: [String: String]) throws(CredentialError) -> Credentials {
    switch spec {
    case .env:
      let username = environment["API_USERNAME"] ?? ""
      let password = environment["API_PASSWORD"] ?? ""
      var missing: [String] = []
      if username.isEmpty { missing.append("API_USERNAME") }
      if password.isEmpty { missing.append("API_PASSWORD") }
      guard missing.isEmpty else {
        throw CredentialError(
          "--credentials env: \(missing.joined(separator: " and ")) \(missing.count == 1 ? "is" : "are") not set; "
            + "export API_USERNAME and API_PASSWORD with the integration's login")
      }
      return Credentials(username: username, password: Secret(password))
    }
  }
}

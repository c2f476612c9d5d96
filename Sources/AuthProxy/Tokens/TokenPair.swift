import FoundationEssentials

/// What a successful login or refresh returns.
public struct TokenPair: Sendable, Equatable {
  public var accessToken: Secret
  public var refreshToken: Secret
  /// Wall-clock seconds since the epoch.
  public var accessExpiresAt: Double
  public var refreshExpiresAt: Double
  public var clientID: String

  public init(accessToken: Secret, refreshToken: Secret, accessExpiresAt: Double, refreshExpiresAt: Double, clientID: String) {
    self.accessToken = accessToken
    self.refreshToken = refreshToken
    self.accessExpiresAt = accessExpiresAt
    self.refreshExpiresAt = refreshExpiresAt
    self.clientID = clientID
  }
}

/// Parses the API's answers (SPEC §1): token bodies with or without the `success/data`
/// envelope, and both error shapes.
public enum APIResponse {
  private struct Fields: Decodable {
    var access_token: String?
    var refresh_token: String?
    var access_expires_at: String?
    var refresh_expires_at: String?
    var client_id: String?
  }
  private struct Envelope: Decodable { var data: Fields? }

  /// The token pair in a 200 body, or nil when the body is not one.
  public static func tokenPair(from body: [UInt8]) -> TokenPair? {
    let decoder = JSONDecoder()
    let data = Data(body)
    let fields: Fields
    if let envelope = try? decoder.decode(Envelope.self, from: data), let inner = envelope.data {
      fields = inner
    } else if let flat = try? decoder.decode(Fields.self, from: data) {
      fields = flat
    } else {
      return nil
    }
    guard let access = fields.access_token, !access.isEmpty, let refresh = fields.refresh_token, !refresh.isEmpty,
      let accessExpiry = fields.access_expires_at.flatMap(RFC3339.parse)
    else { return nil }
    // A missing refresh expiry is taken as the documented 7 days.
    let refreshExpiry = fields.refresh_expires_at.flatMap(RFC3339.parse) ?? (accessExpiry + 7 * 86400)
    return TokenPair(
      accessToken: Secret(access), refreshToken: Secret(refresh), accessExpiresAt: accessExpiry,
      refreshExpiresAt: refreshExpiry, clientID: fields.client_id ?? "")
  }

  private struct NestedError: Decodable {
    struct Inner: Decodable {
      var name: String?
      var code: String?
      var message: String?
    }
    var error: Inner
  }
  private struct FlatError: Decodable {
    var error: String
    var message: String?
  }

  /// The error code (`FORBIDDEN`, `unauthorized`, …) of an error body, if it has one.
  public static func errorCode(from body: [UInt8]) -> String? {
    let data = Data(body)
    if let nested = try? JSONDecoder().decode(NestedError.self, from: data) {
      return nested.error.code ?? nested.error.name
    }
    if let flat = try? JSONDecoder().decode(FlatError.self, from: data) { return flat.error }
    return nil
  }
}

import FoundationEssentials

/// Reads the API's answers (docs/api-contract.md): token bodies with or without the
/// `success/data` envelope, and both error shapes.
///
/// A login that returned tokens is never thrown away for a secondary field: only a missing or
/// empty access or refresh token makes a token answer unusable. Every other field is read
/// leniently (a wrong JSON type reads as missing), and unknown fields are ignored.
public enum APIResponse {
  /// A token answer, and how its access expiry was found.
  public struct TokenAnswer: Sendable, Equatable {
    public var pair: TokenPair
    public var expirySource: ExpirySource
  }

  /// Where the access token's expiry came from, so that a derived one can be warned about.
  public enum ExpirySource: Sendable, Equatable {
    /// `access_expires_at`, as documented.
    case field
    /// The access token's `exp` claim: `access_expires_at` was missing or unreadable.
    case tokenClaim
    /// Neither could be read: the documented lifetime (one hour) from now.
    case documentedLifetime

    /// The warning to log, or nil when the documented field was read.
    public var warning: String? {
      switch self {
      case .field: nil
      case .tokenClaim: "the API's token answer had no readable access_expires_at; using the access token's exp claim"
      case .documentedLifetime:
        "the API's token answer had no readable access_expires_at and the access token is not a JWT with exp; assuming the documented 1 hour"
      }
    }
  }

  /// The documented lifetimes (the API's authentication guide): 1 hour and 7 days.
  public static let documentedAccessLifetime = 3600.0
  public static let documentedRefreshLifetime = 7 * 86400.0

  private struct Fields: Decodable {
    var accessToken: String?
    var refreshToken: String?
    var accessExpiresAt: Double?
    var refreshExpiresAt: Double?
    var clientID: String?

    private enum Key: String, CodingKey {
      case access_token, refresh_token, access_expires_at, refresh_expires_at, client_id
    }

    init(from decoder: any Decoder) throws {
      let c = try decoder.container(keyedBy: Key.self)
      accessToken = try? c.decodeIfPresent(String.self, forKey: .access_token)
      refreshToken = try? c.decodeIfPresent(String.self, forKey: .refresh_token)
      accessExpiresAt = (try? c.decodeIfPresent(String.self, forKey: .access_expires_at)).flatMap { $0 }.flatMap(RFC3339.parse)
      refreshExpiresAt = (try? c.decodeIfPresent(String.self, forKey: .refresh_expires_at)).flatMap { $0 }.flatMap(RFC3339.parse)
      clientID = Self.identifier(c, .client_id)
    }

    /// `client_id` is documented as a number (`123456`); a string is accepted too. Anything
    /// else (absent, null, a fraction, an object) is "unknown".
    private static func identifier(_ c: KeyedDecodingContainer<Key>, _ key: Key) -> String? {
      if let number = try? c.decodeIfPresent(Int64.self, forKey: key) { return String(number) }
      if let text = try? c.decodeIfPresent(String.self, forKey: key), !text.isEmpty { return text }
      return nil
    }

    var hasTokens: Bool { accessToken?.isEmpty == false && refreshToken?.isEmpty == false }
  }

  private struct Envelope: Decodable {
    var data: Fields?
    private enum Key: String, CodingKey { case data }
    init(from decoder: any Decoder) throws {
      data = try? decoder.container(keyedBy: Key.self).decodeIfPresent(Fields.self, forKey: .data)
    }
  }

  /// The token answer in a 2xx body, or nil when it holds no access or no refresh token.
  /// `now` (wall-clock seconds) dates an expiry that the body does not give.
  public static func tokenAnswer(from body: [UInt8], now: Double) -> TokenAnswer? {
    let decoder = JSONDecoder()
    let data = Data(body)
    let fields: Fields
    if let inner = (try? decoder.decode(Envelope.self, from: data))?.data, inner.hasTokens {
      fields = inner
    } else if let flat = try? decoder.decode(Fields.self, from: data), flat.hasTokens {
      fields = flat
    } else {
      return nil
    }
    guard let access = fields.accessToken, let refresh = fields.refreshToken else { return nil }
    let accessExpiry: Double
    let source: ExpirySource
    if let given = fields.accessExpiresAt {
      (accessExpiry, source) = (given, .field)
    } else if let claimed = JWT.expiry(of: access) {
      (accessExpiry, source) = (claimed, .tokenClaim)
    } else {
      (accessExpiry, source) = (now + documentedAccessLifetime, .documentedLifetime)
    }
    let refreshExpiry = fields.refreshExpiresAt ?? (accessExpiry + documentedRefreshLifetime)
    let pair = TokenPair(
      accessToken: Secret(access), refreshToken: Secret(refresh), accessExpiresAt: accessExpiry,
      refreshExpiresAt: refreshExpiry, clientID: fields.clientID)
    return TokenAnswer(pair: pair, expirySource: source)
  }

  /// The token pair of `tokenAnswer(from:now:)`.
  public static func tokenPair(from body: [UInt8], now: Double) -> TokenPair? {
    tokenAnswer(from: body, now: now)?.pair
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

/// The one thing read from a JWT: its `exp` claim (RFC 7519 §4.1.4), unverified. It only dates
/// a token whose answer gave no expiry; the API, not us, decides whether the token is valid.
enum JWT {
  static func expiry(of token: String) -> Double? {
    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 3, let payload = base64URLDecoded(parts[1]) else { return nil }
    struct Claims: Decodable { var exp: Double? }
    guard let exp = (try? JSONDecoder().decode(Claims.self, from: payload))?.exp, exp.isFinite, exp > 0 else { return nil }
    return exp
  }

  private static func base64URLDecoded(_ text: Substring) -> Data? {
    var standard = text.utf8.map { $0 == UInt8(ascii: "-") ? UInt8(ascii: "+") : $0 == UInt8(ascii: "_") ? UInt8(ascii: "/") : $0 }
    standard += repeatElement(UInt8(ascii: "="), count: (4 - standard.count % 4) % 4)
    return Data(base64Encoded: Data(standard))
  }
}

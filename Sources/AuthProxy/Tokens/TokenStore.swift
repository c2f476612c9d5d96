import FoundationEssentials

/// How a new token pair is to be had.
enum TokenRequest {
  case login
  case refresh(Secret)
}

/// Where the token pair lives (SPEC §6): in this process only, or shared with the other
/// replicas through Redis. The control loop asks it for every new pair instead of calling the
/// API itself, so that a shared store can hand out a pair another replica already obtained.
protocol TokenStore: AnyObject {
  /// Shared stores must not log out on exit: another replica may be using the token.
  var isShared: Bool { get }
  /// What is wrong with the store now (for /readyz), nil when nothing is.
  var problem: String? { get }
  /// A newer pair written by another replica, to be adopted without an API call.
  var onAdopt: ((TokenPair) -> Void)? { get set }
  /// Obtains a new pair. `have` is the pair in use now (nil at start). `adopted` tells that the
  /// pair came from the shared store (another replica's login or refresh), not from the API.
  func obtain(
    _ request: TokenRequest, have: TokenPair?, completion: @escaping (_ result: Result<TokenPair, TokenFailure>, _ adopted: Bool) -> Void)
  /// Records a pair obtained elsewhere (a credential rotation).
  func save(_ pair: TokenPair)
  func close()
}

/// The JSON a stored pair is sealed from.
struct StoredTokenPair: Codable {
  var access_token: String
  var refresh_token: String
  var access_expires_at: String
  var refresh_expires_at: String
  var client_id: String?

  init(_ pair: TokenPair) {
    access_token = pair.accessToken.reveal
    refresh_token = pair.refreshToken.reveal
    access_expires_at = RFC3339.format(pair.accessExpiresAt)
    refresh_expires_at = RFC3339.format(pair.refreshExpiresAt)
    client_id = pair.clientID
  }

  static func seal(_ pair: TokenPair, key: EncryptionKey) -> String? {
    guard var json = try? JSONEncoder().encode(StoredTokenPair(pair)) else { return nil }
    defer { json.resetBytes(in: 0..<json.count) }
    return try? SealedCredentials.seal(plaintext: [UInt8](json), key: key)
  }

  /// `now` only matters for a stored pair without an expiry, which this type never writes.
  static func open(_ sealed: [UInt8], key: EncryptionKey, now: Double) -> TokenPair? {
    guard var plain = try? SealedCredentials.open(sealed: String(decoding: sealed, as: UTF8.self), key: key) else { return nil }
    defer { plain.wipe() }
    return APIResponse.tokenPair(from: plain, now: now)
  }
}

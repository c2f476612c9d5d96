import FoundationEssentials

/// The default: the token lives in this process only.
final class MemoryTokenStore: TokenStore {
  private let client: TokenClient
  private let credentials: () -> Credentials
  var onAdopt: ((TokenPair) -> Void)?
  var isShared: Bool { false }
  var problem: String? { nil }

  init(client: TokenClient, credentials: @escaping () -> Credentials) {
    self.client = client
    self.credentials = credentials
  }

  func obtain(
    _ request: TokenRequest, have: TokenPair?, completion: @escaping (_ result: Result<TokenPair, TokenFailure>, _ adopted: Bool) -> Void
  ) {
    switch request {
    case .login: client.login(credentials()) { completion($0, false) }
    case .refresh(let token): client.refresh(token) { completion($0, false) }
    }
  }

  func save(_ pair: TokenPair) {}
  func close() {}
}

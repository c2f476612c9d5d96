/// The token a worker may use now: an immutable value handed to every worker.
public struct TokenSnapshot: Sendable, Equatable {
  /// The whole `Authorization` header value, "Bearer …".
  public let authorization: Secret
  /// After this wall-clock time the token is not sent any more (a little before its expiry).
  public let usableUntil: Double
  /// Increases with every new token; a 401 names the generation it answered.
  public let generation: UInt64

  public func isUsable(at now: Double) -> Bool { now < usableUntil }
}

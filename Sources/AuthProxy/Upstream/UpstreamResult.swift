/// How an upstream attempt ended: a whole answer (`error` nil), or why not.
public struct UpstreamResult: Sendable {
  public var error: UpstreamError?
  /// Did the attempt run on a pooled connection (no new connect)?
  public var reusedConnection: Bool
  public var isSuccess: Bool { error == nil }
}

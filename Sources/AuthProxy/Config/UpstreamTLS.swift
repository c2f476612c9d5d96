/// TLS settings for talking to the upstream. Verification is always on.
public struct UpstreamTLS: Sendable, Equatable {
  public var caFile: String?
  public var pinnedPublicKeys: [String] = []
  public var clientCertificate: String?
  public var clientKey: String?
  public init(caFile: String? = nil) { self.caFile = caFile }
}

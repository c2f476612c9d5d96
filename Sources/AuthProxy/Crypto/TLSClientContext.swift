import COpenSSL
import CShims
import FoundationEssentials

/// An OpenSSL client context for the upstream: TLS 1.2+, the peer's chain and name always
/// verified, optional key pins and client certificate. One per worker thread (it keeps the
/// newest TLS session for resumption without a lock); the trusted CAs are shared.
public final class TLSClientContext {
  let ctx: OpaquePointer
  /// SHA-256 digests of the allowed SubjectPublicKeyInfo; empty: no pinning.
  let pins: [[UInt8]]

  /// `trust`: the process's shared store; nil loads one for this context alone.
  public init(_ tls: UpstreamTLS, trust: TrustStore? = nil) throws(EventError) {
    let trust = if let trust { trust } else { try TrustStore(caFile: tls.caFile) }
    var err = [CChar](repeating: 0, count: 256)
    guard let ctx = ap_tls_client_ctx(trust.store, tls.clientCertificate, tls.clientKey, &err, err.count) else {
      throw EventError(String(cBuffer: err))
    }
    self.ctx = ctx
    pins = tls.pinnedPublicKeys.compactMap { Data(base64Encoded: $0).map { [UInt8]($0) } }
  }

  /// The TLS 1.3 suites this context offers, in its order of preference.
  public var tls13Suites: [String] {
    var out = [CChar](repeating: 0, count: 256)
    guard ap_tls_ctx_tls13_suites(ctx, &out, out.count) > 0 else { return [] }
    return String(cBuffer: out).split(separator: ":").map(String.init)
  }

  /// Does this context verify with `trust`'s store?
  func verifies(with trust: TrustStore) -> Bool { ap_tls_client_ctx_store(ctx) == trust.store }

  deinit { ap_tls_client_ctx_free(ctx) }
}

import COpenSSL
import CShims
import FoundationEssentials

/// The CA certificates the upstream's chain is verified with (`--ca-file`, else the system's),
/// parsed once for the whole process: the system bundle is about 150 certificates, 0.8 MiB of
/// heap per copy, and each worker's context would otherwise hold its own.
public final class TrustStore: @unchecked Sendable {
  // @unchecked: the pointer is set once; OpenSSL reference-counts the store and locks its
  // lookups, so contexts on several threads verify with it at once.
  let store: OpaquePointer
  /// Made without a CA file: OpenSSL's default file and folder.
  private let systemDefaults: Bool

  public init(caFile: String?) throws(EventError) {
    var err = [CChar](repeating: 0, count: 256)
    guard let store = ap_tls_trust_store(caFile, &err, err.count) else { throw EventError(String(cBuffer: err)) }
    self.store = store
    systemDefaults = caFile == nil
  }

  private init(store: OpaquePointer, systemDefaults: Bool) {
    self.store = store
    self.systemDefaults = systemDefaults
  }

  /// A store trusting the same certificates, sharing their parsed copies, with verification
  /// flags of its own: for libcurl, which sets flags (partial chains, trusted first) on the store
  /// it verifies with, and must not change them under the workers. Call before workers start.
  public func sibling() throws(EventError) -> TrustStore {
    guard let copy = ap_tls_trust_store_sibling(store, systemDefaults ? 1 : 0) else {
      throw EventError("cannot share the CA certificates with the control plane")
    }
    return TrustStore(store: copy, systemDefaults: systemDefaults)
  }

  /// The X509_V_FLAG_* verification flags set on the store.
  var flags: UInt { ap_tls_trust_store_flags(store) }

  deinit { ap_tls_trust_store_free(store) }
}

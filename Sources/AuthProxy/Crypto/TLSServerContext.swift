import COpenSSL
import CShims

/// An OpenSSL server context (TLS 1.2+) from PEM files, for the sandbox API.
public final class TLSServerContext: @unchecked Sendable {
  // @unchecked: the SSL_CTX is configured once here and only read afterwards; OpenSSL
  // documents SSL_CTX as safe to share between threads once set up.
  let ctx: OpaquePointer

  /// With `clientCAPath`, clients must present a certificate that CA signed (mutual TLS).
  public init(certificatePath: String, keyPath: String, clientCAPath: String? = nil) throws(EventError) {
    var err = [CChar](repeating: 0, count: 256)
    guard let ctx = ap_tls_server_ctx(certificatePath, keyPath, clientCAPath, &err, err.count) else {
      throw EventError(String(cBuffer: err))
    }
    self.ctx = ctx
  }

  deinit { SSL_CTX_free(ctx) }
}

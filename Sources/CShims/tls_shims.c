#include "cshims.h"
#include <openssl/err.h>
#include <stdio.h>

SSL_CTX *ap_tls_server_ctx(const char *cert_path, const char *key_path, char *err, size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) {
    snprintf(err, errlen, "cannot create a TLS context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
    snprintf(err, errlen, "cannot load the certificate %s", cert_path);
    SSL_CTX_free(ctx);
    return NULL;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    snprintf(err, errlen, "cannot load the private key %s", key_path);
    SSL_CTX_free(ctx);
    return NULL;
  }
  ERR_clear_error();
  return ctx;
}

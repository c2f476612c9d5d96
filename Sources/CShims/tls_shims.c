#include "cshims.h"
#include <openssl/err.h>
#include <stdio.h>

SSL_CTX *ap_tls_server_ctx(const char *cert_path, const char *key_path, const char *client_ca_path, char *err, size_t errlen) {
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
  if (client_ca_path != NULL) {
    if (SSL_CTX_load_verify_locations(ctx, client_ca_path, NULL) != 1) {
      snprintf(err, errlen, "cannot load the client CA %s", client_ca_path);
      SSL_CTX_free(ctx);
      return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  }
  ERR_clear_error();
  return ctx;
}

#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <string.h>

// The newest session the upstream gave us (TLS 1.3 sends them after the handshake), kept as the
// context's app data, so the next connection resumes instead of a full handshake. A client
// context belongs to one thread (one per worker): no lock.
static int ap_tls_keep_session(SSL *ssl, SSL_SESSION *session) {
  SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
  SSL_SESSION *old = SSL_CTX_get_app_data(ctx);
  if (old != NULL) SSL_SESSION_free(old);
  SSL_CTX_set_app_data(ctx, session);
  return 1;  // we keep the reference
}

void ap_tls_client_ctx_free(SSL_CTX *ctx) {
  SSL_SESSION *old = SSL_CTX_get_app_data(ctx);
  if (old != NULL) SSL_SESSION_free(old);
  SSL_CTX_free(ctx);
}

X509_STORE *ap_tls_trust_store(const char *ca_file, char *err, size_t errlen) {
  X509_STORE *store = X509_STORE_new();
  int loaded = store != NULL && (ca_file != NULL ? X509_STORE_load_file(store, ca_file) : X509_STORE_set_default_paths(store));
  if (loaded != 1) {
    snprintf(err, errlen, "cannot load the CA certificates%s%s", ca_file ? " from " : "", ca_file ? ca_file : "");
    X509_STORE_free(store);
    ERR_clear_error();
    return NULL;
  }
  ERR_clear_error();
  return store;
}

void ap_tls_trust_store_free(X509_STORE *store) { X509_STORE_free(store); }

X509_STORE *ap_tls_trust_store_sibling(X509_STORE *source, int default_dir) {
  X509_STORE *sibling = X509_STORE_new();
  if (sibling == NULL) return NULL;
  int ok = 1;
  X509_STORE_lock(source);
  STACK_OF(X509_OBJECT) *objects = X509_STORE_get0_objects(source);
  for (int i = 0; ok && i < sk_X509_OBJECT_num(objects); i++) {
    X509_OBJECT *object = sk_X509_OBJECT_value(objects, i);
    X509 *cert = X509_OBJECT_get0_X509(object);
    X509_CRL *crl = X509_OBJECT_get0_X509_CRL(object);
    // add_cert and add_crl take a reference: the parsed certificate is shared, not copied.
    if (cert != NULL) ok = X509_STORE_add_cert(sibling, cert);
    if (crl != NULL) ok = ok && X509_STORE_add_crl(sibling, crl);
  }
  X509_STORE_unlock(source);
  if (ok && default_dir) {
    // X509_FILETYPE_DEFAULT: SSL_CERT_DIR, else OpenSSL's folder, as X509_STORE_set_default_paths.
    X509_LOOKUP *dir = X509_STORE_add_lookup(sibling, X509_LOOKUP_hash_dir());
    ok = dir != NULL && X509_LOOKUP_add_dir(dir, NULL, X509_FILETYPE_DEFAULT) == 1;
  }
  ERR_clear_error();
  if (!ok) {
    X509_STORE_free(sibling);
    return NULL;
  }
  return sibling;
}

unsigned long ap_tls_trust_store_flags(X509_STORE *store) {
  return X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(store));
}

X509_STORE *ap_tls_client_ctx_store(SSL_CTX *ctx) { return SSL_CTX_get_cert_store(ctx); }

// OpenSSL's own order of the TLS 1.3 suites, as a context has it when nothing (openssl.cnf,
// OPENSSL_CONF) configured them.
static const char *const openssl_default_tls13 = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";
static const char *const preferred_tls13 = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

size_t ap_tls_ctx_tls13_suites(SSL_CTX *ctx, char *out, size_t outlen) {
  STACK_OF(SSL_CIPHER) *ciphers = SSL_CTX_get_ciphers(ctx);
  size_t used = 0;
  if (outlen > 0) out[0] = 0;
  for (int i = 0; ciphers != NULL && i < sk_SSL_CIPHER_num(ciphers); i++) {
    const SSL_CIPHER *cipher = sk_SSL_CIPHER_value(ciphers, i);
    uint16_t id = SSL_CIPHER_get_protocol_id(cipher);
    if (id < 0x1301 || id > 0x1305) continue;
    int wrote = snprintf(out + used, outlen > used ? outlen - used : 0, "%s%s", used ? ":" : "", SSL_CIPHER_get_name(cipher));
    if (wrote < 0 || (size_t)wrote >= outlen - used) return 0;
    used += (size_t)wrote;
  }
  return used;
}

// The same three TLS 1.3 suites, AES-128-GCM first (what BoringSSL, Envoy, Go and browsers
// offer; RFC 8446 §9.1 makes it the one every peer must have). Both ends spend ~20 % less CPU
// per byte than with AES-256-GCM (openssl speed here: 3.1 vs 2.5 GB/s); decryption is about a
// quarter of the proxy's CPU on 1 MiB answers. Only when the list is still OpenSSL's default:
// a list set by the system's OpenSSL configuration (a compliance policy) is kept as it is.
static void prefer_aes128_gcm(SSL_CTX *ctx) {
  char current[256];
  if (ap_tls_ctx_tls13_suites(ctx, current, sizeof current) > 0 && strcmp(current, openssl_default_tls13) == 0) {
    SSL_CTX_set_ciphersuites(ctx, preferred_tls13);
  }
}

SSL_CTX *ap_tls_client_ctx(X509_STORE *store, const char *cert_path, const char *key_path, char *err, size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL) {
    snprintf(err, errlen, "cannot create a TLS context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  prefer_aes128_gcm(ctx);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  // Shared, not copied: OpenSSL locks the store's lookups, so worker threads may verify with it
  // at once (SSL_CTX_set1_cert_store takes a reference).
  SSL_CTX_set1_cert_store(ctx, store);
  if (cert_path != NULL && SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
    snprintf(err, errlen, "cannot load the client certificate %s", cert_path);
    SSL_CTX_free(ctx);
    return NULL;
  }
  if (key_path != NULL &&
      (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1)) {
    snprintf(err, errlen, "cannot load the client key %s", key_path);
    SSL_CTX_free(ctx);
    return NULL;
  }
  // Partial writes: a large request body goes out as the socket takes it. Read-ahead: one read()
  // takes every TLS record the socket holds, up to the read buffer's size. That buffer is 64 KiB,
  // not OpenSSL's ~17 KiB (one record): a large answer then costs a third fewer syscalls and half
  // the context switches (1 MiB: 40 reads, 30 sends and 30 loop passes instead of 60, 48 and 45),
  // and only the pages an answer fills are touched (a small answer touches one). No
  // SSL_MODE_RELEASE_BUFFERS: it frees and allocates the record buffers around every read and
  // write (5 mallocs per proxied request); the pool frees the buffers of connections that stay
  // idle instead (SSL_free_buffers).
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);
  // A peer that closes without close_notify ends the stream like one that sends it (OpenSSL 3
  // otherwise reports an error, and a close-delimited answer would reach the app cut). Whether
  // the answer was whole is the response parser's call: a length or chunked body cut short by
  // the close is still refused as broken.
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, ap_tls_keep_session);
  SSL_CTX_set_app_data(ctx, NULL);
  ERR_clear_error();
  return ctx;
}

SSL *ap_tls_client_new(SSL_CTX *ctx, int fd, const char *host, int resume) {
  SSL *ssl = SSL_new(ctx);
  if (ssl == NULL) return NULL;
  unsigned char ip[16];
  int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
  int ok = SSL_set_fd(ssl, fd);
  if (is_ip) {
    ok = ok && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
  } else {
    ok = ok && SSL_set_tlsext_host_name(ssl, host) && SSL_set1_host(ssl, host);
  }
  if (!ok) {
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
  }
  SSL_SESSION *session = SSL_CTX_get_app_data(ctx);
  if (resume && session != NULL) SSL_set_session(ssl, session);
  SSL_set_connect_state(ssl);
  return ssl;
}

int ap_tls_result(SSL *ssl, int rc) {
  if (rc > 0) return AP_TLS_OK;
  int e = SSL_get_error(ssl, rc);
  switch (e) {
  case SSL_ERROR_WANT_READ: return AP_TLS_WANT_READ;
  case SSL_ERROR_WANT_WRITE: return AP_TLS_WANT_WRITE;
  case SSL_ERROR_ZERO_RETURN: ERR_clear_error(); return AP_TLS_CLOSED;
  case SSL_ERROR_SYSCALL:
    ERR_clear_error();
    return rc == 0 ? AP_TLS_CLOSED : AP_TLS_FAILED;
  default:
    ERR_clear_error();
    return AP_TLS_FAILED;
  }
}

int ap_tls_peer_verified(SSL *ssl) { return SSL_get_verify_result(ssl) == X509_V_OK; }

int ap_tls_peer_key_sha256(SSL *ssl, unsigned char out[32]) {
  X509 *cert = SSL_get1_peer_certificate(ssl);
  if (cert == NULL) return 0;
  unsigned char *der = NULL;
  int len = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
  X509_free(cert);
  if (len <= 0) return 0;
  unsigned int outlen = 0;
  int ok = EVP_Digest(der, (size_t)len, out, &outlen, EVP_sha256(), NULL);
  OPENSSL_free(der);
  return ok && outlen == 32;
}

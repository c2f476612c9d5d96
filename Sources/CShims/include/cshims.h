// The few C entry points Swift cannot call directly: curl's variadic setters and getters,
// libevent's macros and TAILQ walking, and the glue that needs C function pointers with
// a fixed signature (TLS bufferevents for evhttp).
#ifndef AUTHPROXY_CSHIMS_H
#define AUTHPROXY_CSHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/select.h>
#include <sys/time.h>
#include <sys/eventfd.h>
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>

#include "pki.h"
#include "db_shims.h"

// MARK: curl (variadic curl_easy_setopt / curl_easy_getinfo / curl_multi_setopt)

typedef size_t (*ap_curl_data_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);
typedef int (*ap_curl_socket_cb)(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp);
typedef int (*ap_curl_timer_cb)(CURLM *multi, long timeout_ms, void *userp);

CURLcode ap_curl_easy_setopt_long(CURL *h, CURLoption o, long v);
CURLcode ap_curl_easy_setopt_ptr(CURL *h, CURLoption o, const void *v);
CURLcode ap_curl_easy_setopt_off(CURL *h, CURLoption o, curl_off_t v);
CURLcode ap_curl_easy_setopt_data_cb(CURL *h, CURLoption o, ap_curl_data_cb cb);
CURLcode ap_curl_easy_getinfo_long(CURL *h, CURLINFO i, long *out);
CURLcode ap_curl_easy_getinfo_ptr(CURL *h, CURLINFO i, void **out);
CURLMcode ap_curl_multi_setopt_long(CURLM *m, CURLMoption o, long v);
CURLMcode ap_curl_multi_setopt_ptr(CURLM *m, CURLMoption o, void *v);
CURLMcode ap_curl_multi_setopt_socket_cb(CURLM *m, ap_curl_socket_cb cb);
CURLMcode ap_curl_multi_setopt_timer_cb(CURLM *m, ap_curl_timer_cb cb);
/// A share handle for one thread (no locks): DNS cache and TLS sessions, so a new connection to
/// the upstream resumes a TLS session instead of a full handshake.
CURLSH *ap_curl_share_for_thread(void);
/// Reads the next CURLMSG_DONE message; returns 1 with the handle and result, 0 when none is left.
int ap_curl_multi_next_done(CURLM *m, CURL **easy, CURLcode *result);
// Verify the transfer's peer with `store` (shared, reference-counted) instead of loading a CA
// file: no CAINFO/CAPATH, and an SSL_CTX callback that installs the store. Not CURLE_OK when
// this libcurl cannot (a TLS backend other than OpenSSL): the caller then sets CAINFO itself.
CURLcode ap_curl_easy_verify_with_store(CURL *h, X509_STORE *store);

// MARK: libevent

struct evkeyval *ap_evkeyvalq_first(struct evkeyvalq *q);
struct evkeyval *ap_evkeyval_next(struct evkeyval *kv);

/// Makes every connection the server accepts a TLS one, with this server context.
void ap_evhttp_use_tls(struct evhttp *http, SSL_CTX *ctx);

/// When accept(2) fails for want of descriptors or memory, pauses the bound socket's listener
/// for 200 ms instead of letting libevent log and retry at once (a busy loop). The socket must
/// stay bound until its loop stops (the admin listener does).
void ap_evhttp_pause_on_exhaustion(struct evhttp_bound_socket *bound);


// MARK: OpenSSL

/// A TLS server context (TLS 1.2+) from PEM files, requiring a client certificate signed by
/// `client_ca_path` unless it is NULL; NULL with a message in `err` on failure.
SSL_CTX *ap_tls_server_ctx(const char *cert_path, const char *key_path, const char *client_ca_path, char *err, size_t errlen);

/// The certificates trusted for the upstream: `ca_file`, or the system's store when NULL; NULL
/// with a message in `err` on failure. One store serves every client context (they take a
/// reference): a bundle of 150 CAs parsed once, not once per worker.
X509_STORE *ap_tls_trust_store(const char *ca_file, char *err, size_t errlen);
/// Drops the caller's reference to a store made by ap_tls_trust_store.
void ap_tls_trust_store_free(X509_STORE *store);
/// A second store with the certificates of `source` (the same parsed X509s, each referenced, not
/// copied) and flags of its own, for a user that sets flags on the store it is given (libcurl);
/// `default_dir`: also look certificates up in OpenSSL's default folder, as the source does when
/// it was made without a CA file. Call before other threads verify with `source`.
X509_STORE *ap_tls_trust_store_sibling(X509_STORE *source, int default_dir);
/// The verification flags set on a store (X509_V_FLAG_*).
unsigned long ap_tls_trust_store_flags(X509_STORE *store);
/// A TLS client context (TLS 1.2+, peer verification on) trusting `store`, with an optional
/// client certificate and key; NULL with a message in `err` on failure.
SSL_CTX *ap_tls_client_ctx(X509_STORE *store, const char *cert_path, const char *key_path, char *err, size_t errlen);
/// The TLS 1.3 suites a context offers, in order, colon-separated, into `out`; the length, or 0
/// when they do not fit.
size_t ap_tls_ctx_tls13_suites(SSL_CTX *ctx, char *out, size_t outlen);
/// The store a client context verifies with (tests: is it the shared one).
X509_STORE *ap_tls_client_ctx_store(SSL_CTX *ctx);
/// A client TLS object on a connected socket that checks the certificate names `host` (DNS name
/// or IP address) and sends it as SNI (names only); with `resume`, it offers the newest session
/// the context kept.
SSL *ap_tls_client_new(SSL_CTX *ctx, int fd, const char *host, int resume);
/// Frees a context made by ap_tls_client_ctx and the session it kept.
void ap_tls_client_ctx_free(SSL_CTX *ctx);
enum { AP_TLS_OK = 0, AP_TLS_WANT_READ = 1, AP_TLS_WANT_WRITE = 2, AP_TLS_CLOSED = 3, AP_TLS_FAILED = 4 };
/// What the return value `rc` of SSL_connect/SSL_read/SSL_write means (and clears the error queue).
int ap_tls_result(SSL *ssl, int rc);
/// 1 when the peer's certificate chain and name verified.
int ap_tls_peer_verified(SSL *ssl);
/// SHA-256 of the peer certificate's SubjectPublicKeyInfo (what curl's pinning compares); 1 on success.
int ap_tls_peer_key_sha256(SSL *ssl, unsigned char out[32]);

/// Names the calling thread (shown by top and gdb; 15 bytes at most).
void ap_set_thread_name(const char *name);

/// The CPUs this process may run on (sched_getaffinity), 0 when unknown.
int ap_affinity_cpu_count(void);

// MARK: memory

/// Gives the pages glibc's malloc holds free (in every arena, not only at the top of the heap)
/// back to the kernel; 1 if it released any (malloc_trim(0)).
int ap_release_free_memory(void);

/// The uid of the peer of a connected Unix socket (SO_PEERCRED); 0 on success, -1 with errno.
int ap_peer_uid(int fd, unsigned int *uid);

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC (accept4 needs _GNU_SOURCE, which Swift's Glibc
/// lacks): the new descriptor, or -1 with errno.
int ap_accept(int fd, struct sockaddr *address, socklen_t *length);

/// A close-on-exec Unix stream socket, non-blocking when asked; -1 with errno.
int ap_unix_stream_socket(int nonblocking);

/// For a TCP socket (TCP_NODELAY) written with MSG_MORE: when the kernel holds bytes back for a
/// fuller segment and nothing is in flight, no acknowledgement will come to send them (TCP would
/// wait for its probe timer, 200 ms or more), so they are sent now. 0: nothing to do, 1: sent,
/// -1 with errno.
int ap_tcp_push_if_idle(int fd);

/// Sets TCP_NODELAY: segments go out as soon as they are written. 0, or -1 with errno (a Unix
/// socket refuses it).
int ap_tcp_nodelay(int fd);

#endif

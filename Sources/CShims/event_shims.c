#include "cshims.h"
#include <event2/bufferevent_ssl.h>

struct evkeyval *ap_evkeyvalq_first(struct evkeyvalq *q) { return q ? q->tqh_first : NULL; }
struct evkeyval *ap_evkeyval_next(struct evkeyval *kv) { return kv ? kv->next.tqe_next : NULL; }

// MARK: TLS server connections (sandbox API)

static struct bufferevent *ap_tls_bevcb(struct event_base *base, void *arg) {
  SSL_CTX *ctx = arg;
  SSL *ssl = SSL_new(ctx);
  if (ssl == NULL) return NULL;
  // evhttp sets the fd later (bufferevent_setfd); the openssl bufferevent supports that.
  return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

void ap_evhttp_use_tls(struct evhttp *http, SSL_CTX *ctx) { evhttp_set_bevcb(http, ap_tls_bevcb, ctx); }

#include <sys/prctl.h>
void ap_set_thread_name(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }


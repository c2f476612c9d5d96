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

// MARK: accept back-off (admin listener)

#include <errno.h>
#include <event2/listener.h>

static void ap_listener_resume(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  evconnlistener_enable((struct evconnlistener *)arg);
}

static void ap_listener_error(struct evconnlistener *listener, void *ctx) {
  (void)ctx;
  int err = EVUTIL_SOCKET_ERROR();
  if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) return;
  struct timeval pause = {0, 200000};
  // The listener lives as long as the loop runs (see the header), so the one-shot timer that
  // re-enables it never outlives it; if the loop is freed first, the timer goes with it.
  if (event_base_once(evconnlistener_get_base(listener), -1, EV_TIMEOUT, ap_listener_resume, listener, &pause) == 0) {
    evconnlistener_disable(listener);
  }
}

void ap_evhttp_pause_on_exhaustion(struct evhttp_bound_socket *bound) {
  struct evconnlistener *listener = evhttp_bound_socket_get_listener(bound);
  if (listener != NULL) evconnlistener_set_error_cb(listener, ap_listener_error);
}

#include <sys/prctl.h>
void ap_set_thread_name(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }


#include "cshims.h"
#include <event2/bufferevent_ssl.h>
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

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

// MARK: input inspector

// One inspector per thread: set when the worker's listener is created, read in the
// evbuffer callback, which runs on the same thread.
static __thread ap_inspect_fn ap_inspector_fn;
static __thread void *ap_inspector_ctx;

static void ap_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg) {
  struct bufferevent *bev = arg;
  if (info->n_added == 0 || ap_inspector_fn == NULL) return;
  bufferevent_data_cb r = NULL, w = NULL;
  bufferevent_event_cb e = NULL;
  void *cbarg = NULL;
  bufferevent_getcb(bev, &r, &w, &e, &cbarg);
  struct evhttp_connection *evcon = cbarg; // evhttp passes its connection as the bufferevent's cbarg
  if (evcon == NULL) return;

  struct evbuffer_ptr pos;
  if (evbuffer_ptr_set(buf, &pos, info->orig_size, EVBUFFER_PTR_SET) != 0) return;
  struct evbuffer_iovec vec[16];
  size_t remaining = info->n_added;
  while (remaining > 0) {
    int n = evbuffer_peek(buf, (ev_ssize_t)remaining, &pos, vec, 16);
    if (n <= 0) return;
    int used = n < 16 ? n : 16;
    for (int i = 0; i < used && remaining > 0; i++) {
      size_t len = vec[i].iov_len < remaining ? vec[i].iov_len : remaining;
      if (ap_inspector_fn(ap_inspector_ctx, evcon, bev, vec[i].iov_base, len) != 0) return;
      remaining -= len;
      if (evbuffer_ptr_set(buf, &pos, len, EVBUFFER_PTR_ADD) != 0) return;
    }
  }
}

static struct bufferevent *ap_inspecting_bevcb(struct event_base *base, void *arg) {
  (void)arg;
  struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  if (bev == NULL) return NULL;
  evbuffer_add_cb(bufferevent_get_input(bev), ap_input_cb, bev);
  return bev;
}

void ap_evhttp_use_inspector(struct evhttp *http, ap_inspect_fn fn, void *ctx) {
  ap_inspector_fn = fn;
  ap_inspector_ctx = ctx;
  evhttp_set_bevcb(http, ap_inspecting_bevcb, NULL);
}

void ap_reject_connection(struct bufferevent *bev, const char *response, size_t len) {
  evutil_socket_t fd = bufferevent_getfd(bev);
  struct evbuffer *in = bufferevent_get_input(bev);
  evbuffer_drain(in, evbuffer_get_length(in));
  if (fd < 0) return;
  if (response != NULL && len > 0 && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
    ssize_t off = 0;
    while ((size_t)off < len) {
      ssize_t n = send(fd, response + off, len - (size_t)off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      off += n;
    }
  }
  shutdown(fd, SHUT_RDWR);
}

#include <sys/prctl.h>
void ap_set_thread_name(const char *name) { prctl(PR_SET_NAME, name, 0, 0, 0); }


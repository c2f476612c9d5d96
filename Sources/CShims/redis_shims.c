#include "redis_shims.h"
#include <hiredis/adapters/libevent.h>
#include <stdio.h>
#include <stdlib.h>

struct ap_redis_glue {
  void *ctx;
  ap_redis_status_cb on_status;
};

static void ap_redis_on_connect(const redisAsyncContext *ac, int status) {
  struct ap_redis_glue *glue = ac->data;
  if (glue != NULL) glue->on_status(glue->ctx, status == REDIS_OK, status);
  // On a failed connect hiredis frees the context after this callback; no disconnect follows.
  if (status != REDIS_OK) free(glue);
}

static void ap_redis_on_disconnect(const redisAsyncContext *ac, int status) {
  struct ap_redis_glue *glue = ac->data;
  if (glue != NULL) glue->on_status(glue->ctx, 0, status == REDIS_OK ? -2 : status);
  free(glue);
}

redisAsyncContext *ap_redis_connect(struct event_base *base, const char *ip, int port, ap_redis_status_cb on_status,
                                    void *ctx, char *err, size_t errlen) {
  redisAsyncContext *ac = redisAsyncConnect(ip, port);
  if (ac == NULL) {
    snprintf(err, errlen, "cannot allocate a Redis context");
    return NULL;
  }
  if (ac->err) {
    snprintf(err, errlen, "%s", ac->errstr);
    redisAsyncFree(ac);
    return NULL;
  }
  struct ap_redis_glue *glue = malloc(sizeof *glue);
  if (glue == NULL) {
    redisAsyncFree(ac);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  glue->ctx = ctx;
  glue->on_status = on_status;
  ac->data = glue;
  redisLibeventAttach(ac, base);
  redisAsyncSetConnectCallback(ac, ap_redis_on_connect);
  redisAsyncSetDisconnectCallback(ac, ap_redis_on_disconnect);
  return ac;
}

int ap_redis_command(redisAsyncContext *ac, redisCallbackFn *fn, void *privdata, int argc, const char **argv,
                     const size_t *argvlen) {
  return redisAsyncCommandArgv(ac, fn, privdata, argc, argv, argvlen);
}

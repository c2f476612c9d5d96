// hiredis's async client on a libevent base (Debian 12: hiredis 0.14.1).
#ifndef AUTHPROXY_REDIS_SHIMS_H
#define AUTHPROXY_REDIS_SHIMS_H
#include <stddef.h>
#include <event2/event.h>
#include <hiredis/async.h>

/// Connection state changes: connected (status 0), failed to connect or lost (status != 0).
typedef void (*ap_redis_status_cb)(void *ctx, int connected, int status);

/// Starts connecting to ip:port (an IP address: hiredis resolves names blocking) on `base`,
/// with `ctx` handed back to `on_status`. NULL with a message in `err` when it fails at once.
/// After a disconnect (status callback with connected == 0) hiredis frees the context.
redisAsyncContext *ap_redis_connect(struct event_base *base, const char *ip, int port, ap_redis_status_cb on_status,
                                    void *ctx, char *err, size_t errlen);

/// redisAsyncCommandArgv, non-variadic already; here for symmetry and the callback type.
int ap_redis_command(redisAsyncContext *ac, redisCallbackFn *fn, void *privdata, int argc, const char **argv,
                     const size_t *argvlen);

#endif

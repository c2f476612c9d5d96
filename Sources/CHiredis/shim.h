// hiredis 0.14 (Debian 12), for its RESP reply parser only (redisReader): the token store's
// I/O runs over the proxy's own sockets on the control loop (Redis/RedisConnection.swift).
#include <hiredis/hiredis.h>

// struct ucred and SO_PEERCRED need _GNU_SOURCE before any system header.
#define _GNU_SOURCE
#include <sys/socket.h>

int ap_peer_uid(int fd, unsigned int *uid) {
  struct ucred credentials;
  socklen_t length = sizeof credentials;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
  *uid = (unsigned int)credentials.uid;
  return 0;
}

int ap_unix_stream_socket(int nonblocking) {
  return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
}

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

int ap_accept(int fd, struct sockaddr *address, socklen_t *length) {
  return accept4(fd, address, length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int ap_unix_stream_socket(int nonblocking) {
  return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
}

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>

int ap_tcp_nodelay(int fd) {
  int one = 1;
  return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int ap_tcp_push_if_idle(int fd) {
  int queued = 0, unsent = 0;
  if (ioctl(fd, SIOCOUTQ, &queued) != 0) return -1;
  if (queued == 0) return 0;
  if (ioctl(fd, SIOCOUTQNSD, &unsent) != 0) return -1;
  // Nothing held back, or bytes in flight: their acknowledgement sends the rest (TCP_NODELAY).
  if (unsent == 0 || unsent < queued) return 0;
  // Setting TCP_NODELAY (already set) sends what is pending now.
  return ap_tcp_nodelay(fd) == 0 ? 1 : -1;
}

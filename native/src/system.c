// system.c — small system calls Node does not expose: SEQPACKET socket pairs, closing and
// duplicating descriptors, reading only what is cached, no_new_privs, TCP listen.
#include "system.h"

#include "args.h"
#include "errors.h"

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

napi_value native_socketpair(napi_env env, napi_callback_info info) {
  (void)info;
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
    return privdav_throw_errno(env, errno, "socketpair", NULL);
  napi_value result;
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, privdav_int_value(env, pair[0]));
  napi_set_element(env, result, 1, privdav_int_value(env, pair[1]));
  return result;
}

napi_value native_close_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!privdav_get_args(env, info, 1, argv) || !privdav_get_fd(env, argv[0], &fd))
    return privdav_throw_type_error(env, "fd must be a non-negative integer");
  // On Linux the descriptor is released even when close() reports EINTR: retrying could close
  // a descriptor another thread has just been given.
  if (close(fd) != 0 && errno != EINTR) return privdav_throw_errno(env, errno, "close", NULL);
  return NULL;
}

// readCached(fd, buffer, position): preadv2 with RWF_NOWAIT, filling `buffer` from `position`
// only with what is already in the page cache. Returns the bytes read (fewer at end of file, or
// when only part was cached) or -errno: -EAGAIN when nothing could be read without waiting for
// the disk. Lets the web process answer small GETs without a threadpool round trip.
napi_value native_read_cached(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  void *data = NULL;
  size_t length = 0;
  double position;
  bool is_buffer = false;
  napi_valuetype type;
  if (!privdav_get_args(env, info, 3, argv) || !privdav_get_fd(env, argv[0], &fd))
    return privdav_throw_type_error(env, "fd must be a non-negative integer");
  if (napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[1], &data, &length) != napi_ok)
    return privdav_throw_type_error(env, "buffer must be a Buffer");
  if (napi_typeof(env, argv[2], &type) != napi_ok || type != napi_number ||
      napi_get_value_double(env, argv[2], &position) != napi_ok || !(position >= 0 && position <= 9007199254740991.0) ||
      position != (double)(int64_t)position)
    return privdav_throw_type_error(env, "position must be a non-negative integer");
  struct iovec iov = {.iov_base = data, .iov_len = length};
  ssize_t n;
  do n = preadv2(fd, &iov, 1, (off_t)position, RWF_NOWAIT);
  while (n < 0 && errno == EINTR);
  return privdav_int_value(env, n < 0 ? -errno : (int)n);
}

// F_DUPFD_CLOEXEC: the copy must not leak into processes we spawn.
napi_value native_dup_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!privdav_get_args(env, info, 1, argv) || !privdav_get_fd(env, argv[0], &fd))
    return privdav_throw_type_error(env, "fd must be a non-negative integer");
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return privdav_throw_errno(env, errno, "fcntl", NULL);
  return privdav_int_value(env, copy);
}

napi_value native_set_no_new_privs(napi_env env, napi_callback_info info) {
  (void)info;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return privdav_throw_errno(env, errno, "prctl", NULL);
  return NULL;
}

// A numeric host only: resolving names here would block the event loop of the root process.
napi_value native_tcp_listen(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int port, backlog;
  if (!privdav_get_args(env, info, 3, argv)) return NULL;
  if (!privdav_get_int(env, argv[1], 0, 65535, &port)) return privdav_throw_type_error(env, "port must be an integer 0-65535");
  if (!privdav_get_int(env, argv[2], 0, INT32_MAX, &backlog))
    return privdav_throw_type_error(env, "backlog must be a non-negative integer");
  char *host = privdav_get_c_string(env, argv[0]);
  if (host == NULL) return privdav_throw_type_error(env, "host must be a string without NUL bytes");

  // Accept "[::1]" as well as "::1": the configuration spells IPv6 listen addresses in brackets.
  char *bare = host;
  size_t length = strlen(host);
  bool bracketed = length >= 2 && host[0] == '[' && host[length - 1] == ']';
  if (bracketed) {
    host[length - 1] = '\0';
    bare = host + 1;
  }
  char service[8];
  snprintf(service, sizeof service, "%d", port);
  // IPv4 strictly as a dotted quad (getaddrinfo would also take "127.1" or "0x7f.1"); IPv6
  // through getaddrinfo, which understands scope ids ("fe80::1%eth0").
  struct in_addr ipv4;
  struct addrinfo hints = {0};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  hints.ai_family = inet_pton(AF_INET, bare, &ipv4) == 1 ? AF_INET : AF_INET6;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo *address = NULL;
  if (bare[0] == '\0' || (bracketed && hints.ai_family == AF_INET) || getaddrinfo(bare, service, &hints, &address) != 0 || address == NULL) {
    napi_value result = privdav_throw_errno(env, EINVAL, "getaddrinfo (numeric host required)", bare);
    free(host);
    return result;
  }

  int one = 1;
  const char *failed = "socket";
  int fd = socket(address->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    failed = "setsockopt";
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
        (address->ai_family != AF_INET6 ||
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0)) {
      failed = "bind";
      if (bind(fd, address->ai_addr, address->ai_addrlen) == 0) {
        failed = "listen";
        if (listen(fd, backlog) == 0) failed = NULL;
      }
    }
  }
  int err = errno;
  freeaddrinfo(address);
  if (failed != NULL) {
    if (fd >= 0) close(fd);
    napi_value result = privdav_throw_errno(env, err, failed, bare);
    free(host);
    return result;
  }
  free(host);
  return privdav_int_value(env, fd);
}

// groupList(user, gid): the supplementary groups initgroups(user, gid) would give, from NSS
// (getgrouplist), as a sorted array of gids. The monitor compares it with a running worker's.
napi_value native_group_list(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int gid;
  if (!privdav_get_args(env, info, 2, argv)) return privdav_throw_type_error(env, "groupList(user, gid)");
  char *user = privdav_get_c_string(env, argv[0]);
  if (user == NULL) return privdav_throw_type_error(env, "user must be a string without NUL");
  if (!privdav_get_int(env, argv[1], 0, INT_MAX, &gid)) {
    free(user);
    return privdav_throw_type_error(env, "gid must be a non-negative integer");
  }
  int count = 64;
  gid_t *groups = NULL;
  for (int attempt = 0; attempt < 8; attempt++) {
    gid_t *grown = realloc(groups, sizeof(gid_t) * (size_t)count);
    if (grown == NULL) break;
    groups = grown;
    int wanted = count;
    if (getgrouplist(user, (gid_t)gid, groups, &wanted) >= 0) {
      count = wanted;
      free(user);
      for (int i = 1; i < count; i++) {
        gid_t value = groups[i];
        int j = i - 1;
        while (j >= 0 && groups[j] > value) {
          groups[j + 1] = groups[j];
          j--;
        }
        groups[j + 1] = value;
      }
      napi_value result;
      napi_create_array_with_length(env, (size_t)count, &result);
      for (int i = 0; i < count; i++) {
        napi_value number;
        napi_create_uint32(env, groups[i], &number);
        napi_set_element(env, result, (uint32_t)i, number);
      }
      free(groups);
      return result;
    }
    // Too small: getgrouplist said how many there are.
    count = wanted > count ? wanted : count * 2;
  }
  free(groups);
  free(user);
  return privdav_throw_errno(env, ENOMEM, "getgrouplist", NULL);
}

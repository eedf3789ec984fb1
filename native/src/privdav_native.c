// privdav_native.c — the Linux system calls Node does not expose: SEQPACKET socket pairs,
// sendmsg/recvmsg with SCM_RIGHTS on a libuv-polled descriptor, and listen/link/prctl helpers.
// Plain Node-API C: every entry point validates its arguments, because a bad fd or a wrong
// object reaching a system call here would corrupt the daemon instead of throwing.
#include <node_api.h>
#include <uv.h>

#include "closefds.h"
#include "commit.h"
#include "errors.h"
#include "listdir.h"
#include "sendfile.h"
#include "xattr.h"

#include <errno.h>
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

// The kernel's per-message limit on SCM_RIGHTS (include/net/scm.h); not exported to userspace.
#define PRIVDAV_SCM_MAX_FD 253

// ---- errors ------------------------------------------------------------------------------

napi_value privdav_errno_error(napi_env env, int err, const char *syscall, const char *path) {
  char name[64];
  char text[128];
  char message[512 + PATH_MAX];
  uv_err_name_r(-err, name, sizeof name);
  uv_strerror_r(-err, text, sizeof text);
  if (path != NULL)
    snprintf(message, sizeof message, "%s: %s, %s '%s'", name, text, syscall, path);
  else
    snprintf(message, sizeof message, "%s: %s, %s", name, text, syscall);

  napi_value code_value, message_value, error, errno_value, syscall_value;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code_value);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &message_value);
  napi_create_error(env, code_value, message_value, &error);
  napi_create_int32(env, -err, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value);
  napi_set_named_property(env, error, "syscall", syscall_value);
  if (path != NULL) {
    napi_value path_value;
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &path_value);
    napi_set_named_property(env, error, "path", path_value);
  }
  return error;
}

napi_value privdav_throw_errno(napi_env env, int err, const char *syscall, const char *path) {
  napi_throw(env, privdav_errno_error(env, err, syscall, path));
  return NULL;
}

static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path) {
  return privdav_throw_errno(env, err, syscall, path);
}

napi_value privdav_throw_type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

void privdav_uncaught_if_thrown(napi_env env, napi_status status) {
  if (status != napi_pending_exception) return;
  napi_value exception;
  napi_get_and_clear_last_exception(env, &exception);
  napi_fatal_exception(env, exception);
}

void privdav_call_back(napi_env env, napi_value callback, size_t argc, const napi_value *argv) {
  if (callback == NULL) return;
  napi_value receiver, ignored;
  napi_get_global(env, &receiver);
  privdav_uncaught_if_thrown(env, napi_call_function(env, receiver, callback, argc, argv, &ignored));
}

// ---- argument helpers --------------------------------------------------------------------

// Reads an integral number in [min, max]; anything else (NaN, 1.5, a string) is refused.
static bool get_int(napi_env env, napi_value value, int min, int max, int *out) {
  napi_valuetype type;
  double number;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) return false;
  napi_get_value_double(env, value, &number);
  // The range test comes first: it also refuses NaN, which must not reach the integer cast.
  if (!(number >= min && number <= max) || number != (double)(int64_t)number) return false;
  *out = (int)number;
  return true;
}

static bool get_fd(napi_env env, napi_value value, int *fd) {
  return get_int(env, value, 0, INT32_MAX, fd);
}

// Copies a JS string into a fresh malloc'd C string; refuses embedded NUL bytes, which the
// kernel would silently treat as the end of a path or host name.
static char *get_c_string(napi_env env, napi_value value) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return NULL;
  char *text = malloc(length + 1);
  if (text == NULL) return NULL;
  napi_get_value_string_utf8(env, value, text, length + 1, &length);
  if (strlen(text) != length) {
    free(text);
    return NULL;
  }
  return text;
}

static bool get_args(napi_env env, napi_callback_info info, size_t expected, napi_value *argv) {
  size_t argc = expected;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  for (size_t i = argc; i < expected; i++) napi_get_undefined(env, &argv[i]);
  return true;
}

static napi_value int_value(napi_env env, int number) {
  napi_value value;
  napi_create_int32(env, number, &value);
  return value;
}

// ---- socketpair, closeFd, setNoNewPrivs, linkTmpfile, tcpListen ----------------------------

static napi_value native_socketpair(napi_env env, napi_callback_info info) {
  (void)info;
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
    return throw_errno(env, errno, "socketpair", NULL);
  napi_value result;
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, int_value(env, pair[0]));
  napi_set_element(env, result, 1, int_value(env, pair[1]));
  return result;
}

static napi_value native_close_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd))
    return privdav_throw_type_error(env, "fd must be a non-negative integer");
  // On Linux the descriptor is released even when close() reports EINTR: retrying could close
  // a descriptor another thread has just been given.
  if (close(fd) != 0 && errno != EINTR) return throw_errno(env, errno, "close", NULL);
  return NULL;
}

// readCached(fd, buffer, position): preadv2 with RWF_NOWAIT, filling `buffer` from `position`
// only with what is already in the page cache. Returns the bytes read (fewer at end of file, or
// when only part was cached) or -errno: -EAGAIN when nothing could be read without waiting for
// the disk. Lets the web process answer small GETs without a threadpool round trip.
static napi_value native_read_cached(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  void *data = NULL;
  size_t length = 0;
  double position;
  bool is_buffer = false;
  napi_valuetype type;
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd))
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
  return int_value(env, n < 0 ? -errno : (int)n);
}

// F_DUPFD_CLOEXEC: the copy must not leak into processes we spawn.
static napi_value native_dup_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd))
    return privdav_throw_type_error(env, "fd must be a non-negative integer");
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return throw_errno(env, errno, "fcntl", NULL);
  return int_value(env, copy);
}

static napi_value native_set_no_new_privs(napi_env env, napi_callback_info info) {
  (void)info;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return throw_errno(env, errno, "prctl", NULL);
  return NULL;
}

// Names an O_TMPFILE file. linkat(fd, "", AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH, which a
// worker running as the user does not have; the /proc/self/fd route needs only the fd.
static napi_value native_link_tmpfile(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd))
    return privdav_throw_type_error(env, "fd must be a non-negative integer");
  char *new_path = get_c_string(env, argv[1]);
  if (new_path == NULL) return privdav_throw_type_error(env, "newPath must be a string without NUL bytes");
  char proc_path[64];
  snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", fd);
  int rc = linkat(AT_FDCWD, proc_path, AT_FDCWD, new_path, AT_SYMLINK_FOLLOW);
  int err = errno;
  napi_value result = NULL;
  if (rc != 0) result = throw_errno(env, err, "linkat", new_path);
  free(new_path);
  return result;
}

// A numeric host only: resolving names here would block the event loop of the root process.
static napi_value native_tcp_listen(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int port, backlog;
  if (!get_args(env, info, 3, argv)) return NULL;
  if (!get_int(env, argv[1], 0, 65535, &port)) return privdav_throw_type_error(env, "port must be an integer 0-65535");
  if (!get_int(env, argv[2], 0, INT32_MAX, &backlog))
    return privdav_throw_type_error(env, "backlog must be a non-negative integer");
  char *host = get_c_string(env, argv[0]);
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
    napi_value result = throw_errno(env, EINVAL, "getaddrinfo (numeric host required)", bare);
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
    napi_value result = throw_errno(env, err, failed, bare);
    free(host);
    return result;
  }
  free(host);
  return int_value(env, fd);
}

// ---- sendmsg / recvmsg -------------------------------------------------------------------

typedef union {
  struct cmsghdr align;
  char bytes[CMSG_SPACE(sizeof(int) * PRIVDAV_SCM_MAX_FD)];
} control_buffer;

// sendmsg(fd, payload: Buffer, fds: number[] | null) → bytes sent, or -errno.
// Never blocks. On success the passed fds are closed here: the channel owns them and the peer
// now holds its own references. On failure they are left open for the caller to retry or close.
static napi_value native_sendmsg(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  void *data;
  size_t length;
  bool is_buffer = false;
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd))
    return privdav_throw_type_error(env, "fd must be a non-negative integer");
  if (napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[1], &data, &length) != napi_ok)
    return privdav_throw_type_error(env, "payload must be a Buffer");

  int fds[PRIVDAV_SCM_MAX_FD];
  uint32_t count = 0;
  napi_valuetype fds_type;
  napi_typeof(env, argv[2], &fds_type);
  if (fds_type != napi_undefined && fds_type != napi_null) {
    bool is_array = false;
    if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array)
      return privdav_throw_type_error(env, "fds must be an array");
    napi_get_array_length(env, argv[2], &count);
    if (count > PRIVDAV_SCM_MAX_FD) return privdav_throw_type_error(env, "too many fds for one message");
    for (uint32_t i = 0; i < count; i++) {
      napi_value element;
      napi_get_element(env, argv[2], i, &element);
      if (!get_fd(env, element, &fds[i])) return privdav_throw_type_error(env, "fds must be non-negative integers");
    }
  }

  struct iovec iov = {.iov_base = data, .iov_len = length};
  struct msghdr message = {0};
  control_buffer control;
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  if (count > 0) {
    memset(&control, 0, sizeof control);
    message.msg_control = control.bytes;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * count);
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * count);
    memcpy(CMSG_DATA(header), fds, sizeof(int) * count);
  }
  ssize_t sent;
  // MSG_NOSIGNAL: a dead peer must give EPIPE, never SIGPIPE.
  do sent = sendmsg(fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) return int_value(env, -errno);
  for (uint32_t i = 0; i < count; i++) close(fds[i]);
  return int_value(env, (int)sent);
}

// recvmsg(fd, buffer: Buffer, out: Int32Array) → bytes received, or -errno.
// out[0] = msg_flags, out[1] = number of fds, out[2...] = the fds (close-on-exec). The fd
// capacity is out.length - 2; any fd beyond it is closed here and MSG_CTRUNC is reported, so a
// peer can never make us hold more descriptors than the caller agreed to take.
static napi_value native_recvmsg(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  void *data;
  size_t length;
  bool is_buffer = false, is_typedarray = false;
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd))
    return privdav_throw_type_error(env, "fd must be a non-negative integer");
  if (napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[1], &data, &length) != napi_ok)
    return privdav_throw_type_error(env, "buffer must be a Buffer");
  napi_typedarray_type out_type;
  size_t out_length;
  void *out_data;
  if (napi_is_typedarray(env, argv[2], &is_typedarray) != napi_ok || !is_typedarray ||
      napi_get_typedarray_info(env, argv[2], &out_type, &out_length, &out_data, NULL, NULL) != napi_ok ||
      out_type != napi_int32_array || out_length < 2)
    return privdav_throw_type_error(env, "out must be an Int32Array of length >= 2");
  int32_t *out = out_data;
  size_t capacity = out_length - 2;
  if (capacity > PRIVDAV_SCM_MAX_FD) capacity = PRIVDAV_SCM_MAX_FD;

  struct iovec iov = {.iov_base = data, .iov_len = length};
  struct msghdr message = {0};
  control_buffer control;
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  if (capacity > 0) {
    message.msg_control = control.bytes;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * capacity);
  }
  ssize_t received;
  do received = recvmsg(fd, &message, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  while (received < 0 && errno == EINTR);
  if (received < 0) return int_value(env, -errno);

  int flags = message.msg_flags;
  size_t count = 0;
  if (message.msg_controllen > 0) {
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL;
         header = CMSG_NXTHDR(&message, header)) {
      if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
      size_t n = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < n; i++) {
        int received_fd;
        memcpy(&received_fd, CMSG_DATA(header) + i * sizeof(int), sizeof received_fd);
        if (count < capacity) {
          out[2 + count++] = received_fd;
        } else {
          // CMSG_SPACE rounds up, so the kernel may fit one more fd than asked for.
          close(received_fd);
          flags |= MSG_CTRUNC;
        }
      }
    }
  }
  out[0] = flags;
  out[1] = (int32_t)count;
  return int_value(env, (int)received);
}

// socketError(fd) → the pending socket error as -errno (and clears it), or 0. POLLERR on a
// SEQPACKET socket means the peer went away with data unread (ECONNRESET).
static napi_value native_socket_error(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd, error = 0;
  socklen_t length = sizeof error;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd))
    return privdav_throw_type_error(env, "fd must be a non-negative integer");
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
  return int_value(env, -error);
}

// ---- the poll handle ---------------------------------------------------------------------
//
// Lifetime: the struct is freed only when both the libuv handle has finished closing and the JS
// wrapper has been finalized, whichever comes last. The callback reference is strong only while
// polling (so an active channel cannot be collected mid-stream) and weak otherwise (so a
// forgotten idle channel is collected and its fd closed by the finalizer).

typedef struct {
  uv_poll_t poll;  // first member: the uv callbacks cast the handle back to this struct
  napi_env env;
  napi_ref callback;
  napi_async_context async_context;
  int fd;
  int events;
  bool closing;    // uv_close called, fd closed
  bool closed;     // uv close callback has run
  bool finalized;  // JS wrapper is gone
  bool in_callback;  // the JS callback is running (it may close us)
} channel_poll;

static const napi_type_tag channel_poll_tag = {0x7072697664617670ULL, 0x6f6c6c68616e646cULL};

static void on_poll_closed(uv_handle_t *handle) {
  channel_poll *poll = (channel_poll *)handle;
  poll->closed = true;
  if (poll->finalized) free(poll);
}

// The Node-API half of a release. Never while napi_make_callback runs on this async context:
// destroying the context under it would free what the call is still using.
static void channel_poll_release_references(napi_env env, channel_poll *poll) {
  if (poll->callback != NULL) napi_delete_reference(env, poll->callback);
  poll->callback = NULL;
  if (poll->async_context != NULL) napi_async_destroy(env, poll->async_context);
  poll->async_context = NULL;
}

// Order matters: uv_close stops the poll and removes the fd from epoll synchronously, and only
// then is the fd closed, so the number can never be reused while libuv still watches it.
static void channel_poll_release(napi_env env, channel_poll *poll) {
  poll->closing = true;
  uv_close((uv_handle_t *)&poll->poll, on_poll_closed);
  close(poll->fd);
  poll->fd = -1;
  if (!poll->in_callback) channel_poll_release_references(env, poll);
}

static void channel_poll_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  channel_poll *poll = data;
  poll->finalized = true;
  if (!poll->closing)
    channel_poll_release(env, poll);
  else if (poll->closed)
    free(poll);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  channel_poll *poll = (channel_poll *)handle;
  napi_env env = poll->env;
  napi_handle_scope scope;
  if (poll->callback == NULL || napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback = NULL;
  napi_get_reference_value(env, poll->callback, &callback);
  if (status < 0 && poll->events != 0) {
    // libuv reports POLLERR as UV_EBADF and has already stopped the handle: mirror that, so
    // the JS side sees a stopped poll it can restart. `callback` is held by the scope meanwhile.
    poll->events = 0;
    napi_reference_unref(env, poll->callback, NULL);
  }
  if (callback != NULL) {
    napi_value receiver, argv[2], result;
    napi_get_global(env, &receiver);  // make_callback needs an object receiver
    argv[0] = int_value(env, status);
    argv[1] = int_value(env, events);
    // make_callback (not call_function): runs process.nextTick/microtasks afterwards and keeps
    // async_hooks context, exactly like a core socket's callback.
    poll->in_callback = true;
    napi_status call_status = napi_make_callback(env, poll->async_context, receiver, callback, 2, argv, &result);
    poll->in_callback = false;
    // The callback may have closed the handle: the struct stays valid until on_poll_closed runs
    // (a later loop phase), and the references it could not drop are dropped now.
    if (poll->closing) channel_poll_release_references(env, poll);
    privdav_uncaught_if_thrown(env, call_status);
  }
  napi_close_handle_scope(env, scope);
}

static channel_poll *get_poll(napi_env env, napi_value value) {
  bool tagged = false;
  void *data = NULL;
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_object ||
      napi_check_object_type_tag(env, value, &channel_poll_tag, &tagged) != napi_ok || !tagged ||
      napi_unwrap(env, value, &data) != napi_ok || data == NULL) {
    privdav_throw_type_error(env, "not a channel poll handle");
    return NULL;
  }
  channel_poll *poll = data;
  if (poll->closing) {
    napi_throw_error(env, "ERR_CHANNEL_POLL_CLOSED", "channel poll handle is closed");
    return NULL;
  }
  return poll;
}

// pollOpen(fd, callback(status, events)) → handle. Refuses anything but a SEQPACKET socket:
// a stream socket would silently merge messages.
static napi_value native_poll_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  napi_valuetype callback_type;
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd))
    return privdav_throw_type_error(env, "fd must be a non-negative integer");
  if (napi_typeof(env, argv[1], &callback_type) != napi_ok || callback_type != napi_function)
    return privdav_throw_type_error(env, "callback must be a function");
  int type = 0;
  socklen_t type_length = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_length) != 0)
    return throw_errno(env, errno, "getsockopt", NULL);
  if (type != SOCK_SEQPACKET) return throw_errno(env, EPROTOTYPE, "getsockopt", NULL);

  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  channel_poll *poll = calloc(1, sizeof *poll);
  if (poll == NULL) return throw_errno(env, ENOMEM, "calloc", NULL);
  int rc = uv_poll_init(loop, &poll->poll, fd);  // also sets O_NONBLOCK
  if (rc != 0) {
    free(poll);
    return throw_errno(env, -rc, "uv_poll_init", NULL);
  }
  poll->env = env;
  poll->fd = fd;

  napi_value handle, name;
  napi_create_string_utf8(env, "PRIVDAV_CHANNEL", NAPI_AUTO_LENGTH, &name);
  if (napi_create_object(env, &handle) != napi_ok ||
      napi_create_reference(env, argv[1], 0, &poll->callback) != napi_ok ||
      napi_async_init(env, NULL, name, &poll->async_context) != napi_ok ||
      napi_type_tag_object(env, handle, &channel_poll_tag) != napi_ok ||
      napi_wrap(env, handle, poll, channel_poll_finalize, NULL, NULL) != napi_ok) {
    // Not wrapped, so no finalizer will come: free in the close callback. The fd stays open;
    // the JS caller closes it.
    poll->finalized = true;
    poll->closing = true;
    uv_close((uv_handle_t *)&poll->poll, on_poll_closed);
    if (poll->callback != NULL) napi_delete_reference(env, poll->callback);
    if (poll->async_context != NULL) napi_async_destroy(env, poll->async_context);
    return NULL;
  }
  return handle;
}

// pollSet(handle, events): start polling for UV_READABLE|UV_WRITABLE, or stop with 0.
static napi_value native_poll_set(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int events;
  if (!get_args(env, info, 2, argv)) return NULL;
  channel_poll *poll = get_poll(env, argv[0]);
  if (poll == NULL) return NULL;
  if (!get_int(env, argv[1], 0, UV_READABLE | UV_WRITABLE, &events))
    return privdav_throw_type_error(env, "events must be a combination of UV_READABLE and UV_WRITABLE");
  if (events != 0) {
    int rc = uv_poll_start(&poll->poll, events, on_poll);
    if (rc != 0) return throw_errno(env, -rc, "uv_poll_start", NULL);
    if (poll->events == 0) napi_reference_ref(env, poll->callback, NULL);
  } else {
    uv_poll_stop(&poll->poll);
    if (poll->events != 0) napi_reference_unref(env, poll->callback, NULL);
  }
  poll->events = events;
  return NULL;
}

// pollRef(handle, keepAlive): whether an active poll keeps the event loop (the process) alive.
static napi_value native_poll_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  bool keep_alive;
  if (!get_args(env, info, 2, argv)) return NULL;
  channel_poll *poll = get_poll(env, argv[0]);
  if (poll == NULL) return NULL;
  if (napi_get_value_bool(env, argv[1], &keep_alive) != napi_ok)
    return privdav_throw_type_error(env, "keepAlive must be a boolean");
  if (keep_alive)
    uv_ref((uv_handle_t *)&poll->poll);
  else
    uv_unref((uv_handle_t *)&poll->poll);
  return NULL;
}

// pollClose(handle): stop polling, release the handle and close the fd. Idempotent.
static napi_value native_poll_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *data = NULL;
  bool tagged = false;
  if (!get_args(env, info, 1, argv)) return NULL;
  if (napi_check_object_type_tag(env, argv[0], &channel_poll_tag, &tagged) != napi_ok || !tagged ||
      napi_unwrap(env, argv[0], &data) != napi_ok || data == NULL)
    return privdav_throw_type_error(env, "not a channel poll handle");
  channel_poll *poll = data;
  if (!poll->closing) channel_poll_release(env, poll);
  return NULL;
}

// ---- module ------------------------------------------------------------------------------

static void set_constant(napi_env env, napi_value target, const char *name, int number) {
  napi_set_named_property(env, target, name, int_value(env, number));
}

static napi_value init(napi_env env, napi_value exports) {
  privdav_listdir_init();
  napi_property_descriptor functions[] = {
      {"socketpair", NULL, native_socketpair, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tcpListen", NULL, native_tcp_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"linkTmpfile", NULL, native_link_tmpfile, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setNoNewPrivs", NULL, native_set_no_new_privs, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dupFd", NULL, native_dup_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readCached", NULL, native_read_cached, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFd", NULL, native_close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendmsg", NULL, native_sendmsg, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recvmsg", NULL, native_recvmsg, NULL, NULL, NULL, napi_enumerable, NULL},
      {"socketError", NULL, native_socket_error, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollOpen", NULL, native_poll_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollSet", NULL, native_poll_set, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollRef", NULL, native_poll_ref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollClose", NULL, native_poll_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listDirectory", NULL, privdav_list_directory, NULL, NULL, NULL, napi_enumerable, NULL},
      {"releaseListing", NULL, privdav_release_listing, NULL, NULL, NULL, napi_enumerable, NULL},
      {"releaseArrayBuffer", NULL, privdav_release_array_buffer, NULL, NULL, NULL, napi_enumerable, NULL},
      {"commitUpload", NULL, privdav_commit_upload, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xattrList", NULL, privdav_xattr_list, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xattrGet", NULL, privdav_xattr_get, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xattrSet", NULL, privdav_xattr_set, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xattrRemove", NULL, privdav_xattr_remove, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFds", NULL, privdav_close_fds, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendFile", NULL, privdav_send_file, NULL, NULL, NULL, napi_enumerable, NULL},
      {"abortSendFile", NULL, privdav_abort_send_file, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  napi_value constants;
  napi_create_object(env, &constants);
  set_constant(env, constants, "UV_READABLE", UV_READABLE);
  set_constant(env, constants, "UV_WRITABLE", UV_WRITABLE);
  set_constant(env, constants, "MSG_TRUNC", MSG_TRUNC);
  set_constant(env, constants, "MSG_CTRUNC", MSG_CTRUNC);
  set_constant(env, constants, "SCM_MAX_FD", PRIVDAV_SCM_MAX_FD);
  napi_set_named_property(env, exports, "constants", constants);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

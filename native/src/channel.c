// channel.c — the channel's system side: sendmsg/recvmsg with SCM_RIGHTS on a SEQPACKET socket, and
// the libuv poll handle that tells JavaScript when the socket is readable or writable.
#include "channel.h"

#include "args.h"
#include "errors.h"

#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

// ---- sendmsg / recvmsg -------------------------------------------------------------------

typedef union {
  struct cmsghdr align;
  char bytes[CMSG_SPACE(sizeof(int) * PRIVDAV_SCM_MAX_FD)];
} control_buffer;

// sendmsg(fd, payload: Buffer, fds: number[] | null) → bytes sent, or -errno.
// Never blocks. On success the passed fds are closed here: the channel owns them and the peer
// now holds its own references. On failure they are left open for the caller to retry or close.
napi_value native_sendmsg(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  void *data;
  size_t length;
  bool is_buffer = false;
  if (!privdav_get_args(env, info, 3, argv) || !privdav_get_fd(env, argv[0], &fd))
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
      if (!privdav_get_fd(env, element, &fds[i])) return privdav_throw_type_error(env, "fds must be non-negative integers");
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
  if (sent < 0) return privdav_int_value(env, -errno);
  for (uint32_t i = 0; i < count; i++) close(fds[i]);
  return privdav_int_value(env, (int)sent);
}

// recvmsg(fd, buffer: Buffer, out: Int32Array) → bytes received, or -errno.
// out[0] = msg_flags, out[1] = number of fds, out[2...] = the fds (close-on-exec). The fd
// capacity is out.length - 2; any fd beyond it is closed here and MSG_CTRUNC is reported, so a
// peer can never make us hold more descriptors than the caller agreed to take.
napi_value native_recvmsg(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  void *data;
  size_t length;
  bool is_buffer = false, is_typedarray = false;
  if (!privdav_get_args(env, info, 3, argv) || !privdav_get_fd(env, argv[0], &fd))
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
  if (received < 0) return privdav_int_value(env, -errno);

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
  return privdav_int_value(env, (int)received);
}

// socketError(fd) → the pending socket error as -errno (and clears it), or 0. POLLERR on a
// SEQPACKET socket means the peer went away with data unread (ECONNRESET).
napi_value native_socket_error(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd, error = 0;
  socklen_t length = sizeof error;
  if (!privdav_get_args(env, info, 1, argv) || !privdav_get_fd(env, argv[0], &fd))
    return privdav_throw_type_error(env, "fd must be a non-negative integer");
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
  return privdav_int_value(env, -error);
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
    argv[0] = privdav_int_value(env, status);
    argv[1] = privdav_int_value(env, events);
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
napi_value native_poll_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  napi_valuetype callback_type;
  if (!privdav_get_args(env, info, 2, argv) || !privdav_get_fd(env, argv[0], &fd))
    return privdav_throw_type_error(env, "fd must be a non-negative integer");
  if (napi_typeof(env, argv[1], &callback_type) != napi_ok || callback_type != napi_function)
    return privdav_throw_type_error(env, "callback must be a function");
  int type = 0;
  socklen_t type_length = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_length) != 0)
    return privdav_throw_errno(env, errno, "getsockopt", NULL);
  if (type != SOCK_SEQPACKET) return privdav_throw_errno(env, EPROTOTYPE, "getsockopt", NULL);

  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  channel_poll *poll = calloc(1, sizeof *poll);
  if (poll == NULL) return privdav_throw_errno(env, ENOMEM, "calloc", NULL);
  int rc = uv_poll_init(loop, &poll->poll, fd);  // also sets O_NONBLOCK
  if (rc != 0) {
    free(poll);
    return privdav_throw_errno(env, -rc, "uv_poll_init", NULL);
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
napi_value native_poll_set(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int events;
  if (!privdav_get_args(env, info, 2, argv)) return NULL;
  channel_poll *poll = get_poll(env, argv[0]);
  if (poll == NULL) return NULL;
  if (!privdav_get_int(env, argv[1], 0, UV_READABLE | UV_WRITABLE, &events))
    return privdav_throw_type_error(env, "events must be a combination of UV_READABLE and UV_WRITABLE");
  if (events != 0) {
    int rc = uv_poll_start(&poll->poll, events, on_poll);
    if (rc != 0) return privdav_throw_errno(env, -rc, "uv_poll_start", NULL);
    if (poll->events == 0) napi_reference_ref(env, poll->callback, NULL);
  } else {
    uv_poll_stop(&poll->poll);
    if (poll->events != 0) napi_reference_unref(env, poll->callback, NULL);
  }
  poll->events = events;
  return NULL;
}

// pollRef(handle, keepAlive): whether an active poll keeps the event loop (the process) alive.
napi_value native_poll_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  bool keep_alive;
  if (!privdav_get_args(env, info, 2, argv)) return NULL;
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
napi_value native_poll_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *data = NULL;
  bool tagged = false;
  if (!privdav_get_args(env, info, 1, argv)) return NULL;
  if (napi_check_object_type_tag(env, argv[0], &channel_poll_tag, &tagged) != napi_ok || !tagged ||
      napi_unwrap(env, argv[0], &data) != napi_ok || data == NULL)
    return privdav_throw_type_error(env, "not a channel poll handle");
  channel_poll *poll = data;
  if (!poll->closing) channel_poll_release(env, poll);
  return NULL;
}

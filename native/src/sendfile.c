// sendfile.c — sendFile(): a file body from a descriptor to a TCP socket with sendfile(2), so the
// bytes go from the page cache to the socket without passing through JavaScript, or, for a peer on
// this host (`copy`), with write(2) from a mapping of the file, Apache's way (see copy_step). Node streams a
// file as read() into a buffer then write(): two copies and an event-loop turn per chunk, which
// held a 256 MiB GET to ~1.2 GB/s where Apache (sendfile) did ~1.9 GB/s on the same machine.
//
// The socket stays Node's: we send on a dup of its descriptor (so our fd's lifetime is ours),
// while the JavaScript side promises not to write to the socket until we call back. Each step
// runs in the libuv threadpool (a page-cache miss must not stall the event loop) and sends at
// most STEP_BYTES; when the socket is full, a uv_poll on the dup waits for POLLOUT, guarded by
// an idle timer, the same rule as Node's socket timeout (a slow reader is fine, a stalled one
// is not).
#include "sendfile.h"
#include "errors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

// Bytes one threadpool step may send before giving the pool back to other work.
#define STEP_BYTES (16 * 1024 * 1024)
// Most of the file mapped at once by a copy step (the process's resident size grows by as much).
#define COPY_WINDOW (4 * 1024 * 1024)
// Most bytes one write(2) of a copy step offers the socket.
#define COPY_WRITE (1024 * 1024)
// The closed-over handles (poll, timer) that must be closed before the job is freed.
#define HANDLES 2

typedef struct {
  uv_work_t work;
  uv_poll_t poll;
  uv_timer_t timer;
  napi_env env;
  napi_ref callback;
  napi_async_context async_context;
  int socket_fd;  // our dup of the socket
  int file_fd;    // the caller's; never closed here
  int64_t offset;
  int64_t remaining;
  int64_t sent;
  int64_t copied;     // of `sent`, the bytes written from a mapping (the rest went by sendfile)
  uint64_t idle_ms;
  int error;          // errno of a failed step
  const char *syscall;
  bool copy;          // write(2) from a mapping instead of sendfile(2)
  bool again;         // the step stopped at EAGAIN
  bool working;       // a step is in the threadpool
  bool aborted;
  bool finished;      // the callback has been (or is being) called
  int handles_closed;
  bool finalized;     // the JavaScript handle is gone
} sendfile_job;

static const napi_type_tag sendfile_tag = {0x7072697664617673ULL, 0x656e6466696c6521ULL};

static void job_free_if_done(sendfile_job *job) {
  if (job->handles_closed == HANDLES && job->finalized) free(job);
}

static void on_handle_closed(uv_handle_t *handle) {
  sendfile_job *job = handle->data;
  job->handles_closed++;
  job_free_if_done(job);
}

static void job_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  sendfile_job *job = data;
  job->finalized = true;
  job_free_if_done(job);
}

// Up to `want` bytes from `map` (the file at job->offset) written to the socket; false when the
// step must stop (EAGAIN, or an error recorded in the job).
static bool copy_out(sendfile_job *job, const char *map, int64_t want) {
  int64_t done = 0;
  bool more = true;
  while (done < want) {
    size_t count = (size_t)(want - done < COPY_WRITE ? want - done : COPY_WRITE);
    ssize_t n = write(job->socket_fd, map + done, count);
    if (n > 0) {
      done += n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    more = false;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      job->again = true;
    } else if (n < 0 && errno == EFAULT) {
      // The file was truncated under the mapping, or a page could not be read: the kernel's copy
      // faulted (no SIGBUS, which only a user-space access raises; this process never touches
      // the mapping itself).
      job->error = ENODATA;
      job->syscall = "write (the file shrank or could not be read)";
    } else {
      job->error = n < 0 ? errno : EPIPE;
      job->syscall = "write";
    }
    break;
  }
  job->offset += done;
  job->remaining -= done;
  job->sent += done;
  job->copied += done;
  return more;
}

// A copy step: the file mapped COPY_WINDOW at a time and written from the mapping. Over loopback
// the client's read is the bottleneck, and from a sendfile'd page-cache page it reads memory the
// CPU has not seen; from the bytes this copy just wrote into the socket it reads the cache. Measured
// (curl, 8 x 256 MiB, kernel 6.18): curl's system time 0.47-0.61 s with sendfile, 0.29-0.34 s with
// the copy, the sender's 0.12-0.19 s and 0.37-0.45 s: the same CPU in all, split so that the two
// sides work in parallel. To a NIC, sendfile sends without any copy, so it stays for other peers.
static void copy_step(sendfile_job *job) {
  // Never past the file's end as it is now: the zeros after it in its last page are mapped too.
  struct stat st;
  if (fstat(job->file_fd, &st) != 0) {
    job->error = errno;
    job->syscall = "fstat";
    return;
  }
  int64_t page = (int64_t)sysconf(_SC_PAGESIZE);
  int64_t budget = STEP_BYTES;
  while (job->remaining > 0 && budget > 0) {
    int64_t available = (int64_t)st.st_size - job->offset;
    if (available <= 0) {
      job->error = ENODATA;
      job->syscall = "write (file shorter than expected)";
      return;
    }
    int64_t want = job->remaining;
    if (want > available) want = available;
    if (want > COPY_WINDOW) want = COPY_WINDOW;
    if (want > budget) want = budget;
    int64_t base = job->offset - job->offset % page;
    size_t length = (size_t)(job->offset - base + want);
    // No MAP_POPULATE: for a page that cannot be read (EIO) the kernel's populate retries forever,
    // holding this thread past any abort; a fault inside write(2) fails it with EFAULT instead.
    char *map = mmap(NULL, length, PROT_READ, MAP_SHARED, job->file_fd, (off_t)base);
    if (map == MAP_FAILED) {
      if (errno != ENODEV) {
        job->error = errno;
        job->syscall = "mmap";
        return;
      }
      // A file that cannot be mapped (a FUSE file opened for direct I/O, sysfs) is sent with
      // sendfile from here on: the next step (queued at once, nothing failed) takes that way.
      job->copy = false;
      return;
    }
    bool more = copy_out(job, map + (job->offset - base), want);
    munmap(map, length);
    if (!more) return;
    budget -= want;
  }
}

static void step_execute(uv_work_t *work) {
  sendfile_job *job = work->data;
  if (job->copy) return copy_step(job);
  int64_t budget = STEP_BYTES;
  while (job->remaining > 0 && budget > 0) {
    size_t count = (size_t)(job->remaining < budget ? job->remaining : budget);
    off_t offset = (off_t)job->offset;
    ssize_t n = sendfile(job->socket_fd, job->file_fd, &offset, count);
    if (n > 0) {
      job->offset += n;
      job->remaining -= n;
      job->sent += n;
      budget -= n;
      continue;
    }
    if (n == 0) {
      // The file ended before the length promised in Content-Length: it shrank under us.
      job->error = ENODATA;
      job->syscall = "sendfile (file shorter than expected)";
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      job->again = true;
      return;
    }
    job->error = errno;
    job->syscall = "sendfile";
    return;
  }
}

static void step_complete(uv_work_t *work, int status);

static void finish(sendfile_job *job, int error, const char *syscall) {
  job->finished = true;
  uv_close((uv_handle_t *)&job->timer, on_handle_closed);
  // uv_close stops the poll (removes the fd from epoll) first; only then is the fd closed.
  uv_close((uv_handle_t *)&job->poll, on_handle_closed);
  close(job->socket_fd);
  job->socket_fd = -1;

  napi_env env = job->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback = NULL, receiver, argv[3], result;
  napi_get_reference_value(env, job->callback, &callback);
  if (error != 0)
    argv[0] = privdav_errno_error(env, error, syscall, NULL);
  else
    napi_get_null(env, &argv[0]);
  napi_create_int64(env, job->sent, &argv[1]);
  napi_create_int64(env, job->copied, &argv[2]);
  napi_get_global(env, &receiver);
  if (callback != NULL)
    privdav_uncaught_if_thrown(env, napi_make_callback(env, job->async_context, receiver, callback, 3, argv, &result));
  napi_delete_reference(env, job->callback);
  job->callback = NULL;
  napi_async_destroy(env, job->async_context);
  job->async_context = NULL;
  napi_close_handle_scope(env, scope);
}

static void queue_step(sendfile_job *job) {
  uv_loop_t *loop = job->poll.loop;
  job->again = false;
  job->working = true;
  int rc = uv_queue_work(loop, &job->work, step_execute, step_complete);
  if (rc != 0) {
    job->working = false;
    finish(job, -rc, "uv_queue_work");
  }
}

static void on_timeout(uv_timer_t *timer) {
  sendfile_job *job = timer->data;
  if (job->finished) return;
  uv_poll_stop(&job->poll);
  if (job->aborted)
    finish(job, ECANCELED, "sendfile");
  else
    finish(job, ETIMEDOUT, "sendfile (the client stopped reading)");
}

static void on_writable(uv_poll_t *poll, int status, int events) {
  (void)events;
  sendfile_job *job = poll->data;
  if (job->finished) return;
  uv_poll_stop(&job->poll);
  uv_timer_stop(&job->timer);
  if (status < 0) {
    // POLLERR: the peer is gone; the next sendfile would say how, but there is nothing to save.
    finish(job, -status == EBADF ? EPIPE : -status, "poll");
    return;
  }
  queue_step(job);
}

static void step_complete(uv_work_t *work, int status) {
  sendfile_job *job = work->data;
  job->working = false;
  if (status == UV_ECANCELED) return finish(job, ECANCELED, "sendfile");
  if (job->aborted) return finish(job, ECANCELED, "sendfile");
  if (job->error != 0) return finish(job, job->error, job->syscall);
  if (job->remaining == 0) return finish(job, 0, NULL);
  if (!job->again) return queue_step(job);
  int rc = uv_poll_start(&job->poll, UV_WRITABLE, on_writable);
  if (rc != 0) return finish(job, -rc, "uv_poll_start");
  if (job->idle_ms > 0) uv_timer_start(&job->timer, on_timeout, job->idle_ms, 0);
}

static bool get_integer(napi_env env, napi_value value, double min, double max, double *out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) return false;
  if (napi_get_value_double(env, value, out) != napi_ok) return false;
  return *out >= min && *out <= max && *out == (double)(int64_t)*out;
}

// sendFile(socketFd, fileFd, offset, length, idleMs, copy, callback(error, sent, copied)) -> handle for
// abortSendFile; `copied` is the part of `sent` written from a mapping.
napi_value privdav_send_file(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 7) return privdav_throw_type_error(env, "sendFile(socketFd, fileFd, offset, length, idleMs, copy, callback)");
  double socket_fd, file_fd, offset, length, idle_ms;
  if (!get_integer(env, argv[0], 0, INT_MAX, &socket_fd)) return privdav_throw_type_error(env, "socketFd must be a descriptor");
  if (!get_integer(env, argv[1], 0, INT_MAX, &file_fd)) return privdav_throw_type_error(env, "fileFd must be a descriptor");
  if (!get_integer(env, argv[2], 0, 9007199254740991.0, &offset))
    return privdav_throw_type_error(env, "offset must be a non-negative integer");
  if (!get_integer(env, argv[3], 1, 9007199254740991.0, &length))
    return privdav_throw_type_error(env, "length must be a positive integer");
  if (!get_integer(env, argv[4], 0, 86400000.0 * 365, &idle_ms))
    return privdav_throw_type_error(env, "idleMs must be a non-negative integer");
  napi_valuetype type;
  bool copy;
  if (napi_typeof(env, argv[5], &type) != napi_ok || type != napi_boolean ||
      napi_get_value_bool(env, argv[5], &copy) != napi_ok)
    return privdav_throw_type_error(env, "copy must be a boolean");
  if (napi_typeof(env, argv[6], &type) != napi_ok || type != napi_function)
    return privdav_throw_type_error(env, "callback must be a function");

  // Only a stream socket: anything else is a caller's mistake that must not reach sendfile.
  int socket_type = 0;
  socklen_t type_length = sizeof socket_type;
  if (getsockopt((int)socket_fd, SOL_SOCKET, SO_TYPE, &socket_type, &type_length) != 0)
    return privdav_throw_errno(env, errno, "getsockopt", NULL);
  if (socket_type != SOCK_STREAM) return privdav_throw_errno(env, ENOTSOCK, "sendFile (not a stream socket)", NULL);

  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  sendfile_job *job = calloc(1, sizeof *job);
  if (job == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  job->socket_fd = fcntl((int)socket_fd, F_DUPFD_CLOEXEC, 0);
  if (job->socket_fd < 0) {
    int error = errno;
    free(job);
    return privdav_throw_errno(env, error, "dup", NULL);
  }
  job->env = env;
  job->file_fd = (int)file_fd;
  job->offset = (int64_t)offset;
  job->remaining = (int64_t)length;
  job->idle_ms = (uint64_t)idle_ms;
  job->copy = copy;
  job->work.data = job;
  job->poll.data = job;
  job->timer.data = job;

  napi_value resource_name, handle;
  napi_create_string_utf8(env, "PRIVDAV_SENDFILE", NAPI_AUTO_LENGTH, &resource_name);
  int rc = uv_poll_init(loop, &job->poll, job->socket_fd);
  if (rc != 0) {
    close(job->socket_fd);
    free(job);
    return privdav_throw_errno(env, -rc, "uv_poll_init", NULL);
  }
  uv_timer_init(loop, &job->timer);
  if (napi_create_reference(env, argv[6], 1, &job->callback) != napi_ok ||
      napi_async_init(env, NULL, resource_name, &job->async_context) != napi_ok ||
      napi_create_external(env, job, job_finalize, NULL, &handle) != napi_ok ||
      napi_type_tag_object(env, handle, &sendfile_tag) != napi_ok) {
    // Not reachable in practice (allocation failures); leak rather than free under libuv.
    napi_throw_error(env, "ENOMEM", "cannot start sendFile");
    return NULL;
  }
  queue_step(job);
  return handle;
}

// abortSendFile(handle): stop as soon as possible; the callback then gets ECANCELED (or the
// result of a step already running). Idempotent, and a no-op once the transfer has finished.
napi_value privdav_abort_send_file(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool tagged = false;
  void *data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || napi_check_object_type_tag(env, argv[0], &sendfile_tag, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL)
    return privdav_throw_type_error(env, "not a sendFile handle");
  sendfile_job *job = data;
  if (job->finished || job->aborted) return NULL;
  job->aborted = true;
  // A running step ends on its own (step_complete sees `aborted`); a waiting one is woken by
  // the timer on the next loop turn, never by calling back into JavaScript from here.
  if (!job->working) {
    uv_poll_stop(&job->poll);
    uv_timer_start(&job->timer, on_timeout, 0, 0);
  }
  return NULL;
}

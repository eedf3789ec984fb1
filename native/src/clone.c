// clone.c — cloneFile(): the first `length` bytes of one open file into another, in one trip to
// the libuv threadpool per step, for partial updates (PATCH, PUT with Content-Range) that must build the
// new content in a temporary file. FICLONE shares the blocks where the filesystem can (btrfs,
// XFS with reflink); elsewhere copy_file_range copies inside the kernel; read/write is the last
// resort (copy_file_range refuses some pairs of filesystems and special files).
#include "clone.h"
#include "args.h"
#include "errors.h"

#include <errno.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  napi_async_work work;
  napi_ref callback;
  int target;
  int source;
  int64_t from;
  int64_t length;
  int64_t next;
  bool cloned;
  int error;
  const char *syscall;
} clone_job;

static int copy_by_read_write(int source, int target, off_t offset, int64_t length) {
  enum { BUFFER_BYTES = 256 * 1024 };
  char *buffer = malloc(BUFFER_BYTES);
  if (buffer == NULL) return ENOMEM;
  int error = 0;
  while (length > 0 && error == 0) {
    size_t want = length < BUFFER_BYTES ? (size_t)length : BUFFER_BYTES;
    ssize_t got = pread(source, buffer, want, offset);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      error = got < 0 ? errno : ENODATA;  // ENODATA: the source is shorter than it said
      break;
    }
    for (ssize_t done = 0; done < got;) {
      ssize_t put = pwrite(target, buffer + done, (size_t)(got - done), offset + done);
      if (put < 0 && errno == EINTR) continue;
      if (put <= 0) {
        error = put < 0 ? errno : EIO;
        break;
      }
      done += put;
    }
    offset += got;
    length -= got;
  }
  free(buffer);
  return error;
}

static void clone_execute(napi_env env, void *data) {
  (void)env;
  clone_job *job = data;
  struct stat source;
  if (fstat(job->source, &source) != 0) {
    job->error = errno;
    job->syscall = "fstat";
    return;
  }
  // A whole-file clone only when the source is exactly what the caller expects to copy.
  if (job->from == 0 && (int64_t)source.st_size == job->length &&
      ioctl(job->target, FICLONE, job->source) == 0) {
    job->cloned = true;
    job->next = job->length;
    return;
  }
  // One step copies at most STEP_BYTES: the threadpool is the web process's, shared by every
  // user, and the copy of a large file in one job would hold a thread for seconds.
  enum { STEP_BYTES = 16 * 1024 * 1024 };
  off_t in = (off_t)job->from, out = (off_t)job->from;
  int64_t left = job->length - job->from;
  if (left > STEP_BYTES) left = STEP_BYTES;
  job->next = job->from + left;
  while (left > 0) {
    size_t chunk = (size_t)left;
    ssize_t copied = copy_file_range(job->source, &in, job->target, &out, chunk, 0);
    if (copied < 0 && errno == EINTR) continue;
    if (copied < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
      int error = copy_by_read_write(job->source, job->target, in, left);
      if (error != 0) {
        job->error = error;
        job->syscall = "pread/pwrite";
      }
      return;
    }
    if (copied < 0) {
      job->error = errno;
      job->syscall = "copy_file_range";
      return;
    }
    if (copied == 0) {
      job->error = ENODATA;
      job->syscall = "copy_file_range";
      return;
    }
    left -= copied;
  }
}

static void clone_job_free(napi_env env, clone_job *job) {
  if (job->work != NULL) napi_delete_async_work(env, job->work);
  if (job->callback != NULL) napi_delete_reference(env, job->callback);
  free(job);
}

static void clone_complete(napi_env env, napi_status status, void *data) {
  clone_job *job = data;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value callback = NULL, argv[3];
  napi_get_reference_value(env, job->callback, &callback);
  if (status == napi_cancelled) argv[0] = privdav_errno_error(env, ECANCELED, "cloneFile", NULL);
  else if (job->error != 0) argv[0] = privdav_errno_error(env, job->error, job->syscall, NULL);
  else napi_get_null(env, &argv[0]);
  napi_get_boolean(env, job->cloned, &argv[1]);
  napi_create_double(env, (double)job->next, &argv[2]);
  clone_job_free(env, job);
  privdav_call_back(env, callback, 3, argv);
  napi_close_handle_scope(env, scope);
}

static bool integer_argument(napi_env env, napi_value value, double max, double *out) {
  napi_valuetype type;
  return napi_typeof(env, value, &type) == napi_ok && type == napi_number &&
         napi_get_value_double(env, value, out) == napi_ok && *out >= 0 && *out <= max && *out == (double)(int64_t)*out;
}

// cloneFile(targetFd: number, sourceFd: number, from: number, length: number,
//           callback(error, cloned, next)): one step of copying bytes [from, length).
napi_value privdav_clone_file(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 5) return privdav_throw_type_error(env, "cloneFile(targetFd, sourceFd, from, length, callback)");
  int target, source;
  double from, length;
  if (!privdav_get_fd(env, argv[0], &target) || !privdav_get_fd(env, argv[1], &source))
    return privdav_throw_type_error(env, "descriptors must be non-negative integers");
  if (!integer_argument(env, argv[3], 9007199254740991.0, &length))
    return privdav_throw_type_error(env, "length must be a non-negative integer");
  if (!integer_argument(env, argv[2], length, &from))
    return privdav_throw_type_error(env, "from must be an integer from 0 to length");
  napi_valuetype type;
  if (napi_typeof(env, argv[4], &type) != napi_ok || type != napi_function)
    return privdav_throw_type_error(env, "callback must be a function");
  clone_job *job = calloc(1, sizeof *job);
  if (job == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  job->target = target;
  job->source = source;
  job->from = (int64_t)from;
  job->length = (int64_t)length;
  napi_value resource_name;
  napi_create_string_utf8(env, "PRIVDAV_CLONE_FILE", NAPI_AUTO_LENGTH, &resource_name);
  if (napi_create_reference(env, argv[4], 1, &job->callback) != napi_ok ||
      napi_create_async_work(env, NULL, resource_name, clone_execute, clone_complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    clone_job_free(env, job);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, "ENOMEM", "cannot queue the clone");
    return NULL;
  }
  return NULL;
}

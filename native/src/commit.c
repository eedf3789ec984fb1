// commit.c — commitUpload(): the last step of an atomic PUT in one trip to the libuv threadpool:
// fdatasync the upload (when durable), give an O_TMPFILE file its temporary name (linkat through
// /proc/self/fd), and rename it over the target. Done on the event loop, the linkat alone cost
// the worker ~14% of its time under a PUT load and serialised concurrent uploads behind it.
#include "commit.h"
#include "args.h"
#include "errors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  napi_async_work work;
  napi_ref callback;
  int fd;
  char *temporary;  // the name renamed over target
  bool link;        // an O_TMPFILE file: link it as `temporary` first
  char *target;
  bool durable;
  int error;
  const char *syscall;
} commit_job;

static void commit_execute(napi_env env, void *data) {
  (void)env;
  commit_job *job = data;
  if (job->durable && fdatasync(job->fd) != 0) {
    job->error = errno;
    job->syscall = "fdatasync";
    return;
  }
  if (job->link) {
    char proc_path[64];
    snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", job->fd);
    if (linkat(AT_FDCWD, proc_path, AT_FDCWD, job->temporary, AT_SYMLINK_FOLLOW) != 0) {
      job->error = errno;
      job->syscall = "linkat";
      return;
    }
  }
  if (rename(job->temporary, job->target) != 0) {
    job->error = errno;
    job->syscall = "rename";
    // A name we just made must not stay behind (a named fallback is the caller's to remove).
    if (job->link) unlink(job->temporary);
  }
}

static void commit_job_free(napi_env env, commit_job *job) {
  if (job->work != NULL) napi_delete_async_work(env, job->work);
  if (job->callback != NULL) napi_delete_reference(env, job->callback);
  free(job->temporary);
  free(job->target);
  free(job);
}

static void commit_complete(napi_env env, napi_status status, void *data) {
  commit_job *job = data;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value callback = NULL, argv[1];
  napi_get_reference_value(env, job->callback, &callback);
  if (status == napi_cancelled) argv[0] = privdav_errno_error(env, ECANCELED, "commit", NULL);
  else if (job->error != 0) argv[0] = privdav_errno_error(env, job->error, job->syscall, job->target);
  else napi_get_null(env, &argv[0]);
  commit_job_free(env, job);
  privdav_call_back(env, callback, 1, argv);
  napi_close_handle_scope(env, scope);
}

// A path (string, or Buffer for a name that is not UTF-8) of 1 .. PATH_MAX-1 bytes without NUL,
// malloc'ed; NULL (and a thrown error) otherwise.
static char *path_argument(napi_env env, napi_value value, const char *what) {
  char *path = malloc(PATH_MAX);
  if (path == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  if (!privdav_get_path(env, value, path, PATH_MAX)) {
    free(path);
    privdav_throw_type_error(env, what);
    return NULL;
  }
  return path;
}

// commitUpload(fd: number, temporary: string, link: boolean, target: string, durable: boolean, callback(error)).
napi_value privdav_commit_upload(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 6) return privdav_throw_type_error(env, "commitUpload(fd, temporary, link, target, durable, callback)");
  napi_valuetype type;
  double fd;
  if (napi_typeof(env, argv[0], &type) != napi_ok || type != napi_number ||
      napi_get_value_double(env, argv[0], &fd) != napi_ok || !(fd >= 0 && fd <= INT_MAX) || fd != (double)(int)fd)
    return privdav_throw_type_error(env, "fd must be a non-negative integer");
  bool link, durable;
  if (napi_typeof(env, argv[2], &type) != napi_ok || type != napi_boolean ||
      napi_get_value_bool(env, argv[2], &link) != napi_ok)
    return privdav_throw_type_error(env, "link must be a boolean");
  if (napi_typeof(env, argv[4], &type) != napi_ok || type != napi_boolean ||
      napi_get_value_bool(env, argv[4], &durable) != napi_ok)
    return privdav_throw_type_error(env, "durable must be a boolean");
  if (napi_typeof(env, argv[5], &type) != napi_ok || type != napi_function)
    return privdav_throw_type_error(env, "callback must be a function");

  commit_job *job = calloc(1, sizeof *job);
  if (job == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  job->fd = (int)fd;
  job->link = link;
  job->durable = durable;
  job->temporary = path_argument(env, argv[1], "temporary must be a path without NUL bytes");
  if (job->temporary == NULL) {
    commit_job_free(env, job);
    return NULL;
  }
  job->target = path_argument(env, argv[3], "target must be a path without NUL bytes");
  if (job->target == NULL) {
    commit_job_free(env, job);
    return NULL;
  }
  napi_value resource_name;
  napi_create_string_utf8(env, "PRIVDAV_COMMIT_UPLOAD", NAPI_AUTO_LENGTH, &resource_name);
  if (napi_create_reference(env, argv[5], 1, &job->callback) != napi_ok ||
      napi_create_async_work(env, NULL, resource_name, commit_execute, commit_complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    commit_job_free(env, job);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, "ENOMEM", "cannot queue the commit");
    return NULL;
  }
  return NULL;
}

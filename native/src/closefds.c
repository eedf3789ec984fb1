// closefds.c — closeFds(): close a batch of descriptors in one trip to the libuv threadpool.
// close(2) can wait (a FUSE or NFS file flushes on close), so the web process must not close a
// descriptor a worker passed it on the event loop; but one threadpool round trip per request
// cost ~5% of its time on small GETs. Closing the descriptors that piled up meanwhile in one job
// keeps the event loop safe and the cost per request small.
#include "closefds.h"
#include "errors.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_BATCH 65536

typedef struct {
  napi_async_work work;
  napi_ref callback;
  size_t count;
  int fds[];
} close_job;

static void close_execute(napi_env env, void *data) {
  (void)env;
  close_job *job = data;
  // Errors are of no use here: on Linux the descriptor is released whatever close says.
  for (size_t i = 0; i < job->count; i++) close(job->fds[i]);
}

static void close_complete(napi_env env, napi_status status, void *data) {
  (void)status;
  close_job *job = data;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value callback = NULL;
  napi_get_reference_value(env, job->callback, &callback);
  napi_delete_reference(env, job->callback);
  napi_delete_async_work(env, job->work);
  free(job);
  privdav_call_back(env, callback, 0, NULL);
  napi_close_handle_scope(env, scope);
}

// closeFds(fds: Int32Array, callback()): every fd must be >= 0; the array is copied.
napi_value privdav_close_fds(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  bool is_typed = false;
  napi_typedarray_type type;
  size_t count = 0;
  void *data = NULL;
  napi_valuetype callback_type;
  if (argc < 2 || napi_is_typedarray(env, argv[0], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[0], &type, &count, &data, NULL, NULL) != napi_ok || type != napi_int32_array ||
      count == 0 || count > MAX_BATCH) {
    return privdav_throw_type_error(env, "fds must be an Int32Array of 1..65536 descriptors");
  }
  if (napi_typeof(env, argv[1], &callback_type) != napi_ok || callback_type != napi_function) {
    return privdav_throw_type_error(env, "callback must be a function");
  }
  const int *fds = data;
  for (size_t i = 0; i < count; i++)
    if (fds[i] < 0) return privdav_throw_type_error(env, "fds must be non-negative");
  close_job *job = malloc(sizeof *job + count * sizeof(int));
  if (job == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  job->count = count;
  for (size_t i = 0; i < count; i++) job->fds[i] = fds[i];
  napi_value resource_name;
  napi_create_string_utf8(env, "PRIVDAV_CLOSE_FDS", NAPI_AUTO_LENGTH, &resource_name);
  job->callback = NULL;
  job->work = NULL;
  if (napi_create_reference(env, argv[1], 1, &job->callback) != napi_ok ||
      napi_create_async_work(env, NULL, resource_name, close_execute, close_complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    if (job->work != NULL) napi_delete_async_work(env, job->work);
    if (job->callback != NULL) napi_delete_reference(env, job->callback);
    free(job);
    napi_throw_error(env, "ENOMEM", "cannot queue the close");
  }
  return NULL;
}

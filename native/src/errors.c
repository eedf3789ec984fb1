// errors.c — how the addon reports failures (see errors.h): errno errors shaped like node:fs's,
// TypeErrors for bad arguments, and uncaught exceptions from JavaScript callbacks.
#include "errors.h"

#include <uv.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

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

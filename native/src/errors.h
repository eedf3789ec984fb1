// errors.h — one way for every part of the addon to report a failure: a failed system call as an
// Error shaped like node:fs's (code, errno, syscall, and path when there is one), so callers switch
// on err.code; a bad argument as a TypeError; and an exception thrown by a JavaScript callback the
// addon called as an uncaught exception, exactly as for a node:fs callback.
#ifndef PRIVDAV_ERRORS_H
#define PRIVDAV_ERRORS_H
#include <node_api.h>

// Builds the error (for a callback); `path` may be NULL.
napi_value privdav_errno_error(napi_env env, int err, const char *syscall, const char *path);
// Builds and throws it; returns NULL for the caller to return.
napi_value privdav_throw_errno(napi_env env, int err, const char *syscall, const char *path);

// Throws TypeError(code ERR_INVALID_ARG_TYPE, message); returns NULL for the caller to return.
napi_value privdav_throw_type_error(napi_env env, const char *message);
// After calling into JavaScript (napi_call_function or napi_make_callback) with result `status`:
// an exception the callback threw is cleared and raised as an uncaught exception.
void privdav_uncaught_if_thrown(napi_env env, napi_status status);
// Calls `callback` (nothing when NULL) with the global object as receiver, then
// privdav_uncaught_if_thrown: how a threadpool job's completion hands its result to JavaScript.
void privdav_call_back(napi_env env, napi_value callback, size_t argc, const napi_value *argv);

#endif

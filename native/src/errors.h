// errors.h — one way for every part of the addon to report a failed system call: an Error shaped
// like node:fs's (code, errno, syscall, and path when there is one), so callers switch on err.code.
#ifndef PRIVDAV_ERRORS_H
#define PRIVDAV_ERRORS_H
#include <node_api.h>

// Builds the error (for a callback); `path` may be NULL.
napi_value privdav_errno_error(napi_env env, int err, const char *syscall, const char *path);
// Builds and throws it; returns NULL for the caller to return.
napi_value privdav_throw_errno(napi_env env, int err, const char *syscall, const char *path);

#endif

// args.h — reading Node-API arguments for the addon's entry points: each refuses what is not exactly
// the expected type and range (a bad fd or a wrong object reaching a system call would corrupt the
// daemon instead of throwing).
#ifndef PRIVDAV_ARGS_H
#define PRIVDAV_ARGS_H
#include <node_api.h>
#include <stdbool.h>

// Reads an integral number in [min, max]; anything else (NaN, 1.5, a string) is refused.
bool privdav_get_int(napi_env env, napi_value value, int min, int max, int *out);
// A non-negative int: a file descriptor number.
bool privdav_get_fd(napi_env env, napi_value value, int *fd);
// A fresh malloc'd copy of a JS string (the caller frees it); NULL for embedded NUL bytes.
char *privdav_get_c_string(napi_env env, napi_value value);
// A filesystem path: a JS string (as UTF-8) or a Buffer (its bytes: names that are not UTF-8),
// 1 .. capacity-1 bytes without NUL, copied NUL-terminated into `out`. False (nothing thrown) otherwise.
bool privdav_get_path(napi_env env, napi_value value, char *out, size_t capacity);
// The same, saying why not: 0, ENAMETOOLONG (capacity bytes or more: what the kernel would say of
// such a path), or EINVAL (not a string or Buffer, empty, or holding a NUL).
int privdav_read_path(napi_env env, napi_value value, char *out, size_t capacity);
// Exactly `expected` arguments into argv.
bool privdav_get_args(napi_env env, napi_callback_info info, size_t expected, napi_value *argv);
napi_value privdav_int_value(napi_env env, int number);

#endif

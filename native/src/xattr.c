// xattr.c — listxattr/getxattr/setxattr/removexattr by path, synchronous: dead properties live in
// `user.` extended attributes and the worker reads them a few at a time. Replaces the fs-xattr
// package, whose asynchronous binding handed the threadpool a pointer into an unreferenced Buffer,
// which leaked on every get and every error, and which (as an ES module) cost ~10 ms of each
// worker's start.
#include "xattr.h"
#include "args.h"
#include "errors.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

// Linux's XATTR_SIZE_MAX and XATTR_LIST_MAX: no value or name list is larger.
#define VALUE_MAX 65536
#define LIST_MAX 65536
#define NAME_MAX_BYTES 255

// Copies a JS string argument into `out` (capacity bytes); false (with a TypeError thrown) when it
// is not a string, is empty, too long, or holds a NUL that would silently name something else.
static bool string_argument(napi_env env, napi_value value, char *out, size_t capacity, const char *what) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok || length == 0 || length >= capacity) {
    privdav_throw_type_error(env, what);
    return false;
  }
  napi_get_value_string_utf8(env, value, out, capacity, &length);
  if (strlen(out) != length) {
    privdav_throw_type_error(env, what);
    return false;
  }
  return true;
}

// The same for a path argument, which may also be a Buffer (a name that is not UTF-8).
static bool path_argument(napi_env env, napi_value value, char *out, size_t capacity) {
  if (privdav_get_path(env, value, out, capacity)) return true;
  privdav_throw_type_error(env, "path must be a string or Buffer without NUL bytes");
  return false;
}

static bool get_arguments(napi_env env, napi_callback_info info, size_t count, napi_value *argv) {
  size_t argc = count;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (argc < count) {
    privdav_throw_type_error(env, "missing arguments");
    return false;
  }
  return true;
}

// xattrList(path): string[] — every attribute name the caller may see.
napi_value privdav_xattr_list(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char path[PATH_MAX];
  if (!get_arguments(env, info, 1, argv) || !path_argument(env, argv[0], path, sizeof path))
    return NULL;
  char *names = malloc(LIST_MAX);
  if (names == NULL) return privdav_throw_errno(env, ENOMEM, "listxattr", path);
  ssize_t size = listxattr(path, names, LIST_MAX);
  if (size < 0) {
    int err = errno;
    free(names);
    return privdav_throw_errno(env, err, "listxattr", path);
  }
  napi_value result;
  napi_create_array(env, &result);
  uint32_t index = 0;
  for (ssize_t offset = 0; offset < size;) {
    size_t length = strnlen(names + offset, (size_t)(size - offset));
    napi_value name;
    napi_create_string_utf8(env, names + offset, length, &name);
    napi_set_element(env, result, index++, name);
    offset += (ssize_t)length + 1;
  }
  free(names);
  return result;
}

// xattrGet(path, name): Buffer — throws ENODATA when the attribute is absent.
napi_value privdav_xattr_get(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[PATH_MAX], name[NAME_MAX_BYTES + 1];
  if (!get_arguments(env, info, 2, argv) || !path_argument(env, argv[0], path, sizeof path) ||
      !string_argument(env, argv[1], name, sizeof name, "name must be a string of 1-255 bytes"))
    return NULL;
  // One read into a buffer of the largest possible size: no size query, so no ERANGE race.
  char *value = malloc(VALUE_MAX);
  if (value == NULL) return privdav_throw_errno(env, ENOMEM, "getxattr", path);
  ssize_t size = getxattr(path, name, value, VALUE_MAX);
  if (size < 0) {
    int err = errno;
    free(value);
    return privdav_throw_errno(env, err, "getxattr", path);
  }
  napi_value result;
  void *data;
  napi_status status = napi_create_buffer_copy(env, (size_t)size, value, &data, &result);
  free(value);
  return status == napi_ok ? result : privdav_throw_errno(env, ENOMEM, "getxattr", path);
}

// xattrSet(path, name, value: Buffer).
napi_value privdav_xattr_set(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char path[PATH_MAX], name[NAME_MAX_BYTES + 1];
  if (!get_arguments(env, info, 3, argv) || !path_argument(env, argv[0], path, sizeof path) ||
      !string_argument(env, argv[1], name, sizeof name, "name must be a string of 1-255 bytes"))
    return NULL;
  bool is_buffer = false;
  void *data;
  size_t length;
  if (napi_is_buffer(env, argv[2], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[2], &data, &length) != napi_ok)
    return privdav_throw_type_error(env, "value must be a Buffer");
  if (setxattr(path, name, data, length, 0) != 0) return privdav_throw_errno(env, errno, "setxattr", path);
  return NULL;
}

// xattrRemove(path, name) — throws ENODATA when the attribute is absent.
napi_value privdav_xattr_remove(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[PATH_MAX], name[NAME_MAX_BYTES + 1];
  if (!get_arguments(env, info, 2, argv) || !path_argument(env, argv[0], path, sizeof path) ||
      !string_argument(env, argv[1], name, sizeof name, "name must be a string of 1-255 bytes"))
    return NULL;
  if (removexattr(path, name) != 0) return privdav_throw_errno(env, errno, "removexattr", path);
  return NULL;
}

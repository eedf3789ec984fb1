// args.c — the argument checks the addon's entry points share (see args.h).
#include "args.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Reads an integral number in [min, max]; anything else (NaN, 1.5, a string) is refused.
bool privdav_get_int(napi_env env, napi_value value, int min, int max, int *out) {
  napi_valuetype type;
  double number;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) return false;
  napi_get_value_double(env, value, &number);
  // The range test comes first: it also refuses NaN, which must not reach the integer cast.
  if (!(number >= min && number <= max) || number != (double)(int64_t)number) return false;
  *out = (int)number;
  return true;
}

bool privdav_get_fd(napi_env env, napi_value value, int *fd) {
  return privdav_get_int(env, value, 0, INT32_MAX, fd);
}

// Copies a JS string into a fresh malloc'd C string; refuses embedded NUL bytes, which the
// kernel would silently treat as the end of a path or host name.
char *privdav_get_c_string(napi_env env, napi_value value) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return NULL;
  char *text = malloc(length + 1);
  if (text == NULL) return NULL;
  napi_get_value_string_utf8(env, value, text, length + 1, &length);
  if (strlen(text) != length) {
    free(text);
    return NULL;
  }
  return text;
}

int privdav_read_path(napi_env env, napi_value value, char *out, size_t capacity) {
  size_t length;
  bool is_buffer = false;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok) return EINVAL;
  if (is_buffer) {
    void *data;
    if (napi_get_buffer_info(env, value, &data, &length) != napi_ok || length == 0) return EINVAL;
    if (length >= capacity) return ENAMETOOLONG;
    memcpy(out, data, length);
    out[length] = '\0';
  } else {
    if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok || length == 0) return EINVAL;
    if (length >= capacity) return ENAMETOOLONG;
    napi_get_value_string_utf8(env, value, out, capacity, &length);
  }
  // An embedded NUL would silently name something else.
  return strlen(out) == length ? 0 : EINVAL;
}

bool privdav_get_path(napi_env env, napi_value value, char *out, size_t capacity) {
  return privdav_read_path(env, value, out, capacity) == 0;
}

bool privdav_get_args(napi_env env, napi_callback_info info, size_t expected, napi_value *argv) {
  size_t argc = expected;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  for (size_t i = argc; i < expected; i++) napi_get_undefined(env, &argv[i]);
  return true;
}

napi_value privdav_int_value(napi_env env, int number) {
  napi_value value;
  napi_create_int32(env, number, &value);
  return value;
}

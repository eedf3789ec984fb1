// openread.c — openForRead(): a GET's file opened in one call, as LocalStorage.openRead did with
// three node:fs calls (stat, open, fstat), each building a BigIntStats with four Date objects that
// the Stat then converted back from BigInt. The same checks in the same order: the path is
// stat'ed first so that a FIFO or a device is never opened (opening a FIFO waits for a writer),
// then opened non-blocking, then the descriptor itself is checked, since that is what is read.
#include "openread.h"
#include "args.h"
#include "errors.h"
#include "listdir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// numbers[0]: the descriptor, or OPENED_DIRECTORY / OPENED_OTHER (nothing left open).
#define OPENED_DIRECTORY -1.0
#define OPENED_OTHER -2.0
#define NUMBER_FIELDS 4

static double not_a_file(mode_t mode) {
  return S_ISDIR(mode) ? OPENED_DIRECTORY : OPENED_OTHER;
}

// statx of the descriptor, or fstat where statx is missing (ENOSYS) or refused by an old seccomp
// filter (EPERM), as libuv falls back: no birth time then (toStat uses the change time).
static int stat_descriptor(int fd, struct statx *st) {
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS | STATX_BTIME, st) == 0) return 0;
  if (errno != ENOSYS && errno != EPERM) return -1;
  struct stat plain;
  if (fstat(fd, &plain) != 0) return -1;
  memset(st, 0, sizeof *st);
  st->stx_mask = STATX_BASIC_STATS;
  st->stx_mode = (uint16_t)plain.st_mode;
  st->stx_ino = plain.st_ino;
  st->stx_size = (uint64_t)plain.st_size;
  st->stx_mtime.tv_sec = plain.st_mtim.tv_sec;
  st->stx_mtime.tv_nsec = (uint32_t)plain.st_mtim.tv_nsec;
  st->stx_ctime.tv_sec = plain.st_ctim.tv_sec;
  st->stx_ctime.tv_nsec = (uint32_t)plain.st_ctim.tv_nsec;
  return 0;
}

// openForRead(path, numbers: Float64Array(4)) -> the ETag; numbers = [fd, size, mtimeMs,
// birthtimeMs]. Fails as node:fs does (code, errno, syscall) when a call fails.
napi_value privdav_open_for_read(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[PATH_MAX];
  if (!privdav_get_args(env, info, 2, argv)) return NULL;
  // Too long is the kernel's ENAMETOOLONG (a 414 for the client, as node:fs gave), not a bad argument.
  int path_error = privdav_read_path(env, argv[0], path, sizeof path);
  if (path_error == ENAMETOOLONG) return privdav_throw_errno(env, ENAMETOOLONG, "stat", NULL);
  if (path_error != 0)
    return privdav_throw_type_error(env, "openForRead(path, numbers): path must be a non-empty path");
  bool is_typed_array = false;
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (napi_is_typedarray(env, argv[1], &is_typed_array) != napi_ok || !is_typed_array ||
      napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_float64_array || length < NUMBER_FIELDS)
    return privdav_throw_type_error(env, "openForRead(path, numbers): numbers must be a Float64Array(4)");
  double *numbers = data;

  struct stat before;
  if (stat(path, &before) != 0) return privdav_throw_errno(env, errno, "stat", path);
  napi_value etag;
  if (!S_ISREG(before.st_mode)) {
    numbers[0] = not_a_file(before.st_mode);
    napi_get_null(env, &etag);
    return etag;
  }
  int fd;
  do fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return privdav_throw_errno(env, errno, "open", path);
  struct statx st;
  if (stat_descriptor(fd, &st) != 0) {
    int error = errno;
    close(fd);
    return privdav_throw_errno(env, error, "fstat", NULL);
  }
  if (!S_ISREG(st.stx_mode)) {
    close(fd);
    numbers[0] = not_a_file(st.stx_mode);
    napi_get_null(env, &etag);
    return etag;
  }
  __int128 mtime_ns = (__int128)st.stx_mtime.tv_sec * 1000000000 + st.stx_mtime.tv_nsec;
  __int128 ctime_ns = (__int128)st.stx_ctime.tv_sec * 1000000000 + st.stx_ctime.tv_nsec;
  bool has_btime = (st.stx_mask & STATX_BTIME) != 0;
  __int128 btime_ns = has_btime ? (__int128)st.stx_btime.tv_sec * 1000000000 + st.stx_btime.tv_nsec : 0;
  char text[128];
  size_t text_length = privdav_format_etag(text, (int64_t)st.stx_ino, (int64_t)st.stx_size, mtime_ns);
  if (napi_create_string_latin1(env, text, text_length, &etag) != napi_ok) {
    close(fd);
    return privdav_throw_errno(env, ENOMEM, "openForRead", NULL);
  }
  numbers[0] = fd;
  numbers[1] = (double)(int64_t)st.stx_size;
  numbers[2] = privdav_milliseconds(mtime_ns);
  // As toStat: the change time where the filesystem keeps no birth time.
  numbers[3] = privdav_milliseconds(btime_ns != 0 ? btime_ns : ctime_ns);
  return etag;
}

// quota.c — diskQuota(): a user's disk quota on the filesystem holding a path (quotactl
// Q_GETQUOTA), for the RFC 4331 quota properties. A user may read their own quota without
// privileges, so the worker asks as itself. quotactl_fd (Linux 5.14) needs no device name; older
// kernels get quotactl on /dev/block/MAJOR:MINOR of the path's filesystem.
#include "quota.h"
#include "args.h"
#include "errors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/quota.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef SYS_quotactl_fd
#define SYS_quotactl_fd 443  // the same number on every architecture (Linux 5.14)
#endif

// The answers that mean "this filesystem keeps no quota for users": the caller falls back to
// the filesystem's free space. ESRCH: quotas are off; ENOSYS/ENOTSUP: no quota support.
static bool means_no_quota(int error) {
  return error == ESRCH || error == ENOSYS || error == ENOTSUP || error == ENOTTY || error == ENODEV ||
         error == ENOENT || error == EINVAL;
}

static int get_quota(int fd, uid_t uid, struct dqblk *quota) {
  if (syscall(SYS_quotactl_fd, fd, QCMD(Q_GETQUOTA, USRQUOTA), uid, quota) == 0) return 0;
  if (errno != ENOSYS) return errno;
  struct stat st;
  if (fstat(fd, &st) != 0) return errno;
  char device[64];
  snprintf(device, sizeof device, "/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
  return quotactl(QCMD(Q_GETQUOTA, USRQUOTA), device, (int)uid, (caddr_t)quota) == 0 ? 0 : errno;
}

static void set_number(napi_env env, napi_value object, const char *name, uint64_t value) {
  napi_value number;
  napi_create_double(env, (double)value, &number);
  napi_set_named_property(env, object, name, number);
}

// diskQuota(path: string, uid: number): {usedBytes, softLimitBytes, hardLimitBytes} | null.
napi_value privdav_disk_quota(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 2) return privdav_throw_type_error(env, "diskQuota(path, uid)");
  char path[PATH_MAX];
  if (!privdav_get_path(env, argv[0], path, sizeof path - 1))
    return privdav_throw_type_error(env, "path must be a string or Buffer without NUL bytes");
  double uid;
  napi_valuetype type;
  if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_number ||
      napi_get_value_double(env, argv[1], &uid) != napi_ok || !(uid >= 0 && uid <= 4294967294.0) ||
      uid != (double)(uint32_t)uid)
    return privdav_throw_type_error(env, "uid must be an integer uid");
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return privdav_throw_errno(env, errno, "open", path);
  struct dqblk quota;
  memset(&quota, 0, sizeof quota);
  int error = get_quota(fd, (uid_t)uid, &quota);
  close(fd);
  napi_value result;
  if (error != 0) {
    if (means_no_quota(error)) {
      napi_get_null(env, &result);
      return result;
    }
    return privdav_throw_errno(env, error, "quotactl", path);
  }
  napi_create_object(env, &result);
  // dqb_curspace is in bytes; the block limits are in 1 KiB quota blocks.
  set_number(env, result, "usedBytes", quota.dqb_curspace);
  set_number(env, result, "softLimitBytes", (uint64_t)quota.dqb_bsoftlimit * 1024);
  set_number(env, result, "hardLimitBytes", (uint64_t)quota.dqb_bhardlimit * 1024);
  return result;
}

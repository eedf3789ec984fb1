// privdav_native.c — the addon's module: registers the entry points of its parts (channel.c,
// system.c, listdir.c, commit.c, xattr.c, sendfile.c, closefds.c) and its constants.
// Plain Node-API C: every entry point validates its arguments, because a bad fd or a wrong
// object reaching a system call here would corrupt the daemon instead of throwing.
#include <node_api.h>
#include <uv.h>

#include "args.h"
#include "channel.h"
#include "closefds.h"
#include "clone.h"
#include "commit.h"
#include "listdir.h"
#include "openread.h"
#include "quota.h"
#include "sendfile.h"
#include "system.h"
#include "xattr.h"

#include <sys/socket.h>

// ---- module ------------------------------------------------------------------------------

static void set_constant(napi_env env, napi_value target, const char *name, int number) {
  napi_set_named_property(env, target, name, privdav_int_value(env, number));
}

static napi_value init(napi_env env, napi_value exports) {
  privdav_listdir_init();
  napi_property_descriptor functions[] = {
      {"socketpair", NULL, native_socketpair, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tcpListen", NULL, native_tcp_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setNoNewPrivs", NULL, native_set_no_new_privs, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dupFd", NULL, native_dup_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"groupList", NULL, native_group_list, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readCached", NULL, native_read_cached, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openForRead", NULL, privdav_open_for_read, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFd", NULL, native_close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendmsg", NULL, native_sendmsg, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recvmsg", NULL, native_recvmsg, NULL, NULL, NULL, napi_enumerable, NULL},
      {"socketError", NULL, native_socket_error, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollOpen", NULL, native_poll_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollSet", NULL, native_poll_set, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollRef", NULL, native_poll_ref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollClose", NULL, native_poll_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listingOpen", NULL, privdav_listing_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listingRead", NULL, privdav_listing_read, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listingClose", NULL, privdav_listing_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"releaseListing", NULL, privdav_release_listing, NULL, NULL, NULL, napi_enumerable, NULL},
      {"releaseArrayBuffer", NULL, privdav_release_array_buffer, NULL, NULL, NULL, napi_enumerable, NULL},
      {"commitUpload", NULL, privdav_commit_upload, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xattrList", NULL, privdav_xattr_list, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xattrGet", NULL, privdav_xattr_get, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xattrSet", NULL, privdav_xattr_set, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xattrRemove", NULL, privdav_xattr_remove, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFds", NULL, privdav_close_fds, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendFile", NULL, privdav_send_file, NULL, NULL, NULL, napi_enumerable, NULL},
      {"abortSendFile", NULL, privdav_abort_send_file, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cloneFile", NULL, privdav_clone_file, NULL, NULL, NULL, napi_enumerable, NULL},
      {"diskQuota", NULL, privdav_disk_quota, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  napi_value constants;
  napi_create_object(env, &constants);
  set_constant(env, constants, "UV_READABLE", UV_READABLE);
  set_constant(env, constants, "UV_WRITABLE", UV_WRITABLE);
  set_constant(env, constants, "MSG_TRUNC", MSG_TRUNC);
  set_constant(env, constants, "MSG_CTRUNC", MSG_CTRUNC);
  set_constant(env, constants, "SCM_MAX_FD", PRIVDAV_SCM_MAX_FD);
  napi_set_named_property(env, exports, "constants", constants);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

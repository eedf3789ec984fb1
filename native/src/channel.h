// channel.h — the entry points channel.c adds to the privdav_native addon (registered in its init).
#ifndef PRIVDAV_CHANNEL_H
#define PRIVDAV_CHANNEL_H
#include <node_api.h>

// The kernel's per-message limit on SCM_RIGHTS (include/net/scm.h); not exported to userspace.
#define PRIVDAV_SCM_MAX_FD 253

napi_value native_sendmsg(napi_env env, napi_callback_info info);
napi_value native_recvmsg(napi_env env, napi_callback_info info);
napi_value native_socket_error(napi_env env, napi_callback_info info);
napi_value native_poll_open(napi_env env, napi_callback_info info);
napi_value native_poll_set(napi_env env, napi_callback_info info);
napi_value native_poll_ref(napi_env env, napi_callback_info info);
napi_value native_poll_close(napi_env env, napi_callback_info info);

#endif

// system.h — the entry points system.c adds to the privdav_native addon (registered in its init).
#ifndef PRIVDAV_SYSTEM_H
#define PRIVDAV_SYSTEM_H
#include <node_api.h>

napi_value native_socketpair(napi_env env, napi_callback_info info);
napi_value native_close_fd(napi_env env, napi_callback_info info);
napi_value native_read_cached(napi_env env, napi_callback_info info);
napi_value native_dup_fd(napi_env env, napi_callback_info info);
napi_value native_set_no_new_privs(napi_env env, napi_callback_info info);
napi_value native_tcp_listen(napi_env env, napi_callback_info info);
napi_value native_group_list(napi_env env, napi_callback_info info);

#endif

// xattr.h — the extended-attribute calls xattr.c adds to the privdav_native addon.
#ifndef PRIVDAV_XATTR_H
#define PRIVDAV_XATTR_H
#include <node_api.h>

napi_value privdav_xattr_list(napi_env env, napi_callback_info info);
napi_value privdav_xattr_get(napi_env env, napi_callback_info info);
napi_value privdav_xattr_set(napi_env env, napi_callback_info info);
napi_value privdav_xattr_remove(napi_env env, napi_callback_info info);

#endif

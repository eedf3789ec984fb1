// clone.h — the entry point clone.c adds to the privdav_native addon (registered in its init).
#ifndef PRIVDAV_CLONE_H
#define PRIVDAV_CLONE_H
#include <node_api.h>

// cloneFile(targetFd, sourceFd, from, length, callback(error, cloned, next)): see native/index.ts.
napi_value privdav_clone_file(napi_env env, napi_callback_info info);

#endif

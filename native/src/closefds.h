// closefds.h — the entry point closefds.c adds to the privdav_native addon (registered in its init).
#ifndef PRIVDAV_CLOSEFDS_H
#define PRIVDAV_CLOSEFDS_H
#include <node_api.h>

// closeFds(fds, callback): see native/index.ts.
napi_value privdav_close_fds(napi_env env, napi_callback_info info);

#endif

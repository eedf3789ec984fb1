// openread.h — the entry point openread.c adds to the privdav_native addon (registered in its init).
#ifndef PRIVDAV_OPENREAD_H
#define PRIVDAV_OPENREAD_H
#include <node_api.h>

napi_value privdav_open_for_read(napi_env env, napi_callback_info info);

#endif

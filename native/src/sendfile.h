// sendfile.h — the entry points sendfile.c adds to the privdav_native addon (registered in its init).
#ifndef PRIVDAV_SENDFILE_H
#define PRIVDAV_SENDFILE_H
#include <node_api.h>

// sendFile(socketFd, fileFd, offset, length, idleMs, callback): see native/index.ts.
napi_value privdav_send_file(napi_env env, napi_callback_info info);
// abortSendFile(handle): see native/index.ts.
napi_value privdav_abort_send_file(napi_env env, napi_callback_info info);

#endif

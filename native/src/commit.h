// commit.h — the entry point commit.c adds to the privdav_native addon (registered in its init).
#ifndef PRIVDAV_COMMIT_H
#define PRIVDAV_COMMIT_H
#include <node_api.h>

// commitUpload(fd, temporary, link, target, durable, callback): see native/index.ts.
napi_value privdav_commit_upload(napi_env env, napi_callback_info info);

#endif

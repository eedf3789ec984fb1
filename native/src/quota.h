// quota.h — the entry point quota.c adds to the privdav_native addon (registered in its init).
#ifndef PRIVDAV_QUOTA_H
#define PRIVDAV_QUOTA_H
#include <node_api.h>

// diskQuota(path, uid): see native/index.ts.
napi_value privdav_disk_quota(napi_env env, napi_callback_info info);

#endif

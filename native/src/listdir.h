// listdir.h — the entry point listdir.c adds to the privdav_native addon (registered in its init).
#ifndef PRIVDAV_LISTDIR_H
#define PRIVDAV_LISTDIR_H
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

// listingOpen(path, xattrs, wire?), listingRead(handle, maxMembers, callback), listingClose(handle):
// a directory listed in batches; see listdir.c and native/index.ts.
napi_value privdav_listing_open(napi_env env, napi_callback_info info);
napi_value privdav_listing_read(napi_env env, napi_callback_info info);
napi_value privdav_listing_close(napi_env env, napi_callback_info info);

napi_value privdav_release_listing(napi_env env, napi_callback_info info);
// Reads listdir.c's settings from the environment (PRIVDAV_LISTXATTR_BY_PATH) once, at load.
void privdav_listdir_init(void);
napi_value privdav_release_array_buffer(napi_env env, napi_callback_info info);

// Shared with openread.c, so that an opened file's Stat is the one its listing gives: the ETag
// toStat makes ("<ino>-<size>-<mtime ns>" in hex; at most 63 bytes), and Number(ns / 1000n) / 1000.
size_t privdav_format_etag(char *out, int64_t ino, int64_t size, __int128 mtime_ns);
double privdav_milliseconds(__int128 ns);

#endif

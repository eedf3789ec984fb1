# Builds privdav_native.node: plain Node-API C (no C++ runtime), Linux only.
{
  "targets": [
    {
      "target_name": "privdav_native",
      "sources": ["src/privdav_native.c", "src/errors.c", "src/args.c", "src/system.c", "src/channel.c", "src/listdir.c", "src/listing_xml.c", "src/commit.c", "src/xattr.c", "src/sendfile.c", "src/closefds.c", "src/clone.c", "src/quota.c", "src/openread.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration", "-fvisibility=hidden"]
    }
  ]
}

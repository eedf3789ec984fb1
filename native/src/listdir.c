// listdir.c — directory listings: one directory's members with their stat and their `user.dav`
// extended attributes, read in batches over one open directory (a cursor: listingOpen, then
// listingRead until the end, on the libuv threadpool or here and now; listingClose). A PROPFIND
// Depth 1 over a big collection otherwise costs the worker's event loop a stat and an xattr
// listing per member; batches keep its memory to one batch whatever the directory's size.
// The work callback touches only C memory; JS values are built in the completion callback.
#include "listdir.h"
#include "args.h"
#include "errors.h"
#include "listing_xml.h"

#include <uv.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

// The dead-property attributes of helper/dead-props.ts: `user.dav:{ns}name` and `user.dav#<hash>`.
#define PLAIN_PREFIX "user.dav:"
#define HASHED_PREFIX "user.dav#"
#define PREFIX_LENGTH 9
// Linux's XATTR_SIZE_MAX: no value can be larger, so one buffer of this size never gives ERANGE.
#define VALUE_CAPACITY 65536
// A batch ends once it holds this much (names, attribute names and values, wire text; a single
// member may take it past): the next member is read by the next batch.
#define MAX_BATCH_BYTES (4u * 1024 * 1024)
// A rendered listing's batch (listing_xml.c: ~750 bytes a member) ends sooner: its buffers then
// stay below glibc's mmap threshold and TRIM_AFTER_BYTES, so that listing after listing reuses
// the same heap memory instead of faulting in fresh pages (which cost more than the rendering).
#define MAX_XML_BATCH_BYTES (96u * 1024)
// Listings whose buffers grew this large give their freed memory back to the system at close.
#define TRIM_AFTER_BYTES (256u * 1024)

enum xattr_mode { XATTRS_NONE = 0, XATTRS_NAMES = 1, XATTRS_VALUES = 2 };

// Per member in `members` (uint32): name offset, name length, flags, first attribute, attribute
// count, ETag offset, ETag length, wire text offset, wire text length. In a wire listing a member
// with wire text has only flags and the wire fields; one without (MEMBER_NEEDS_JS) has its slot
// in `stats` and `numbers` in place of the wire text offset.
#define MEMBER_FIELDS 9
#define MEMBER_IS_SYMLINK 1u
// Set when the listing was asked for wire text but this member has none: JavaScript makes its
// entry (a name that is not plain UTF-8 JSON can carry, dead properties to decode, huge numbers).
#define MEMBER_NEEDS_JS 2u
// Per member (per MEMBER_NEEDS_JS member in a wire listing) in `stats` (int64, as node:fs's
// BigIntStats): dev, ino, mode, uid, gid, size, then seconds and nanoseconds of mtime, ctime and
// birthtime (0/0 where the filesystem has none).
#define STAT_FIELDS 12
// Per member in `numbers` (double), what helper/local-storage.ts's Stat holds, computed here so
// that JavaScript builds no BigInt per member: size, mtime and birthtime in milliseconds (as
// Number(ns / 1000n) / 1000; birthtime falls back to ctime), and the mode (for the kind).
#define NUMBER_FIELDS 4
// Per attribute in `attrs` (uint32): name offset, name length, value offset, value length
// (NO_VALUE when the value was not asked for).
#define ATTR_FIELDS 4
#define NO_VALUE UINT32_MAX

typedef struct {
  void *data;
  size_t length;    // bytes used
  size_t capacity;  // bytes allocated
} growable;

// One listing: the directory, opened by its first batch and closed after its last (at its end, on
// an error, by listingClose, or by the finalizer of an abandoned handle), and the output of the
// batch being read. At most one batch is in flight: the DIR stream is not shared.
typedef struct {
  napi_async_work work;  // the batch in flight, if any
  napi_ref callback;
  napi_ref self;  // holds the handle (and so this job) while a batch is in flight
  // Inputs.
  char *path;
  enum xattr_mode xattrs;
  uint32_t max_members;  // of the batch being read
  // Wire text (helper/protocol.ts entryToWire) is written for each member when wire_prefix is set:
  // the JSON text of the directory's DavPath plus "/", without its closing quote.
  char *wire_prefix;
  size_t wire_prefix_length;
  uint32_t wire_max_name_bytes;  // longer names would make too long a DavPath: left to JavaScript
  bool wire_props;               // entries end in {} (no dead properties) rather than without
  // Set when the wire text is PROPFIND responses (listing_xml.c) rather than JSON.
  xml_template *xml;
  size_t xml_room;  // the most one member's response takes
  // The open directory and what reading it needs, from the first batch until the last.
  DIR *dir;
  bool opened;           // the first batch opened it (or failed to)
  char *member_path;     // "<path>/<name>\0": the xattr calls take paths
  size_t path_length;    // of the directory part of member_path, '/' included
  char *value;
  char *names;
  size_t names_capacity;
  // State, on the JavaScript thread.
  bool busy;             // a batch is in flight on the threadpool
  bool close_requested;  // listingClose during that batch: closed when it completes
  bool closed;           // ended, failed or closed: nothing more to read
  bool orphaned;         // the handle was finalized during a batch: freed when it completes
  // Outputs of one batch, filled on the threadpool; the buffers are kept for the next batch.
  int error;             // errno, 0 on success
  const char *syscall;   // what failed
  uint32_t count;        // members
  bool end;              // the directory has no more members
  growable bytes, members, stats, attrs, numbers, wire;
} list_job;

static void growable_free(growable *buffer) {
  free(buffer->data);
  buffer->data = NULL;
  buffer->length = buffer->capacity = 0;
}

// Appends `length` bytes (copied from `source` unless it is NULL); returns where they start, or
// NULL when out of memory.
static void *growable_append(growable *buffer, const void *source, size_t length) {
  if (buffer->length + length > buffer->capacity) {
    size_t capacity = buffer->capacity == 0 ? 4096 : buffer->capacity;
    while (capacity < buffer->length + length) capacity *= 2;
    void *data = realloc(buffer->data, capacity);
    if (data == NULL) return NULL;
    buffer->data = data;
    buffer->capacity = capacity;
  }
  void *at = (char *)buffer->data + buffer->length;
  if (source != NULL) memcpy(at, source, length);
  buffer->length += length;
  return at;
}

static bool batch_full(const list_job *job) {
  return job->count >= job->max_members ||
         job->bytes.length + job->members.length + job->stats.length + job->attrs.length + job->numbers.length +
                 job->wire.length >=
             (job->xml != NULL ? MAX_XML_BATCH_BYTES : MAX_BATCH_BYTES);
}

// listxattrat(2) (Linux 6.13): the member's attributes by name relative to its directory's
// descriptor, a third cheaper than listxattr's walk of the whole path. Where the kernel lacks it
// (ENOSYS, remembered), listxattr of the path — also when PRIVDAV_LISTXATTR_BY_PATH is set in the
// environment, so that the tests cover the older kernels' way too.
#ifndef SYS_listxattrat
#if defined(__x86_64__) || defined(__aarch64__)
#define SYS_listxattrat 465
#endif
#endif
static atomic_bool no_listxattrat;

static ssize_t list_attributes(int dir_fd, const char *name, const char *member_path, char *list, size_t size) {
#ifdef SYS_listxattrat
  if (!atomic_load_explicit(&no_listxattrat, memory_order_relaxed)) {
    ssize_t length = syscall(SYS_listxattrat, dir_fd, name, 0, list, size);
    if (length >= 0 || errno != ENOSYS) return length;
    atomic_store_explicit(&no_listxattrat, true, memory_order_relaxed);
  }
#else
  (void)dir_fd;
  (void)name;
#endif
  return listxattr(member_path, list, size);
}

// Lists the member's attributes into `names` (grown as needed); returns the list's length, or
// -1 when the member has none we can read.
static ssize_t list_attribute_names(int dir_fd, const char *name, const char *member_path, char **names,
                                    size_t *capacity) {
  for (int attempt = 0; attempt < 3; attempt++) {
    ssize_t length = list_attributes(dir_fd, name, member_path, *names, *capacity);
    if (length >= 0) return length;
    if (errno != ERANGE) return -1;  // ENOTSUP, EACCES, ...: no dead properties
    // The list grew since we sized the buffer: ask for its size and try again.
    ssize_t needed = list_attributes(dir_fd, name, member_path, NULL, 0);
    if (needed < 0) return -1;
    char *grown = realloc(*names, (size_t)needed + 256);
    if (grown == NULL) return -1;
    *names = grown;
    *capacity = (size_t)needed + 256;
  }
  return -1;
}

// Records the member's `user.dav` attributes (and their values, as the mode asks). Attributes that
// vanish or may not be read are left out; any other failure leaves the member with none, as
// helper/dead-props.ts does. Returns false only when out of memory.
static bool read_attributes(list_job *job, int dir_fd, const char *member_name, const char *member_path,
                            uint32_t *member, char **names, size_t *names_capacity, char *value) {
  ssize_t length = list_attribute_names(dir_fd, member_name, member_path, names, names_capacity);
  if (length <= 0) return true;
  size_t first_attr = job->attrs.length;
  size_t first_byte = job->bytes.length;
  uint32_t count = 0;
  for (const char *name = *names; name < *names + length; name += strlen(name) + 1) {
    bool hashed = strncmp(name, HASHED_PREFIX, PREFIX_LENGTH) == 0;
    if (!hashed && strncmp(name, PLAIN_PREFIX, PREFIX_LENGTH) != 0) continue;
    uint32_t value_length = NO_VALUE;
    // A hashed attribute's property name is inside its value, so 'names' needs those values too.
    if (job->xattrs == XATTRS_VALUES || hashed) {
      ssize_t got = getxattr(member_path, name, value, VALUE_CAPACITY);
      if (got < 0) {
        if (errno == ENODATA || errno == EACCES || errno == EPERM) continue;
        // Anything else: the member shows no dead properties rather than some of them.
        job->attrs.length = first_attr;
        job->bytes.length = first_byte;
        return true;
      }
      value_length = (uint32_t)got;
    }
    size_t name_length = strlen(name);
    uint32_t record[ATTR_FIELDS] = {(uint32_t)job->bytes.length, (uint32_t)name_length, 0, value_length};
    if (growable_append(&job->bytes, name, name_length) == NULL) return false;
    if (value_length != NO_VALUE) {
      record[2] = (uint32_t)job->bytes.length;
      if (growable_append(&job->bytes, value, value_length) == NULL) return false;
    }
    if (growable_append(&job->attrs, record, sizeof record) == NULL) return false;
    count++;
  }
  member[3] = (uint32_t)(first_attr / (ATTR_FIELDS * sizeof(uint32_t)));
  member[4] = count;
  return true;
}

// Appends `value` in lowercase hex, with a '-' when negative: BigInt.prototype.toString(16).
static char *put_hex(char *out, __int128 value) {
  char digits[40];
  int n = 0;
  unsigned __int128 magnitude = value < 0 ? -(unsigned __int128)value : (unsigned __int128)value;
  if (value < 0) *out++ = '-';
  do {
    digits[n++] = "0123456789abcdef"[magnitude & 15];
    magnitude >>= 4;
  } while (magnitude != 0);
  while (n > 0) *out++ = digits[--n];
  return out;
}

// The ETag helper/local-storage.ts's toStat makes from a BigIntStats: "<ino>-<size>-<mtime ns>" in
// hex, where ino and size are the signed 64-bit values node:fs reports.
size_t privdav_format_etag(char *out, int64_t ino, int64_t size, __int128 mtime_ns) {
  char *at = out;
  *at++ = '"';
  at = put_hex(at, ino);
  *at++ = '-';
  at = put_hex(at, size);
  *at++ = '-';
  at = put_hex(at, mtime_ns);
  *at++ = '"';
  return (size_t)(at - out);
}

double privdav_milliseconds(__int128 ns) {
  // Number(ns / 1000n) / 1000: BigInt division truncates toward zero, as C's does.
  return (double)(ns / 1000) / 1000.0;
}

// ---- wire text ------------------------------------------------------------------------------

// Appends `name` as JSON string content (without quotes), or returns false when it is not a name
// this text can carry as the JavaScript path would: not strict UTF-8, control characters (they
// need escapes), a backslash (layout.ts has rules about "\\." pieces). Such names go to JavaScript.
static bool put_json_name(growable *out, const char *name, size_t length) {
  const unsigned char *at = (const unsigned char *)name;
  const unsigned char *end = at + length;
  while (at < end) {
    if (*at < 0x20 || *at == '\\') return false;
    if (*at == '"') {
      if (growable_append(out, "\\\"", 2) == NULL) return false;
      at++;
      continue;
    }
    size_t n = privdav_utf8_sequence(at, (size_t)(end - at));  // strict, as TextDecoder fatal
    if (n == 0 || growable_append(out, at, n) == NULL) return false;
    at += n;
  }
  return true;
}

// 2^53: integers below it are exact doubles, printed as JSON.stringify prints them.
#define EXACT_INTEGER 9007199254740992.0

// Appends a number as JSON: integers in decimal; anything else so that JSON.parse gives back
// the same double (%.17g), which is all the receiving side needs.
static bool put_number(growable *out, double value) {
  char text[40];
  int n;
  if (value > -EXACT_INTEGER && value < EXACT_INTEGER && value == (double)(int64_t)value) {
    // By hand: snprintf took a tenth of a big listing's time on the threadpool.
    n = (int)(privdav_put_decimal(text, (int64_t)value) - text);
  } else
    n = snprintf(text, sizeof text, "%.17g", value);
  return growable_append(out, ",", 1) != NULL && growable_append(out, text, (size_t)n) != NULL;
}

// Writes the member's wire text, followed by a comma: [path, kind, size, mtimeUs, birthtimeUs,
// etag(, {})] as helper/protocol.ts's entryToWire writes it for what
// local-storage.ts makes of this member. Returns false (and writes nothing) when JavaScript must
// make this entry instead.
static bool put_wire_entry(list_job *job, const char *name, size_t name_length, const double *numbers,
                           __int128 mtime_ns, __int128 birth_ns, const char *etag, size_t etag_length,
                           uint32_t attribute_count) {
  if (name_length > job->wire_max_name_bytes || (job->wire_props && attribute_count > 0)) return false;
  // Times as whole microseconds, as entryToWire's Math.round(ms * 1000); beyond 2^53 µs (year
  // 287,396) the JavaScript path decides.
  __int128 mtime_us = mtime_ns / 1000, birth_us = birth_ns / 1000;
  if (mtime_us <= -(__int128)EXACT_INTEGER || mtime_us >= (__int128)EXACT_INTEGER ||
      birth_us <= -(__int128)EXACT_INTEGER || birth_us >= (__int128)EXACT_INTEGER)
    return false;
  growable *out = &job->wire;
  size_t start = out->length;
  unsigned mode = (unsigned)numbers[3];
  const char *kind = S_ISREG(mode) ? "\",\"file\"" : S_ISDIR(mode) ? "\",\"directory\"" : "\",\"other\"";
  bool ok = growable_append(out, "[", 1) != NULL &&
            growable_append(out, job->wire_prefix, job->wire_prefix_length) != NULL &&
            put_json_name(out, name, name_length) && growable_append(out, kind, strlen(kind)) != NULL &&
            put_number(out, numbers[0]) && put_number(out, (double)(int64_t)mtime_us) &&
            put_number(out, (double)(int64_t)birth_us) && growable_append(out, ",\"\\\"", 4) != NULL &&
            // The ETag is hex digits and '-' between its quotes: only those quotes need escapes.
            growable_append(out, etag + 1, etag_length - 2) != NULL &&
            growable_append(out, "\\\"\"", 3) != NULL;
  ok = ok && (job->wire_props ? growable_append(out, ",{}],", 5) : growable_append(out, "],", 2)) != NULL;
  if (!ok) out->length = start;
  return ok;
}

// Writes the member's PROPFIND response (listing_xml.c) as its wire text. Returns false
// (and writes nothing) when JavaScript must make this member's entry: a member with dead
// properties, one that is neither a file nor a directory, or one listing_xml.c leaves to it.
static bool put_xml_entry(list_job *job, const char *name, size_t name_length, const double *numbers,
                          const char *etag, size_t etag_length, uint32_t attribute_count) {
  unsigned mode = (unsigned)numbers[3];
  if (name_length > job->wire_max_name_bytes || attribute_count > 0 || !(S_ISREG(mode) || S_ISDIR(mode)))
    return false;
  growable *out = &job->wire;
  size_t start = out->length;
  char *at = growable_append(out, NULL, job->xml_room);
  if (at == NULL) return false;
  xml_member member = {S_ISDIR(mode), numbers[0], numbers[1], numbers[2], etag, etag_length};
  size_t length = xml_render_member(at, job->xml, name, name_length, &member);
  out->length = start + length;
  return length > 0;
}

// Closes the directory (if open) and frees what reading it took. Safe to call twice.
static void close_directory(list_job *job) {
  if (job->dir != NULL) closedir(job->dir);
  job->dir = NULL;
  free(job->member_path);
  free(job->value);
  free(job->names);
  job->member_path = job->value = job->names = NULL;
}

// The first batch opens the directory (so that opendir, too, runs where the batches run); false
// with the error set when it cannot.
static bool open_directory(list_job *job) {
  job->opened = true;
  job->dir = opendir(job->path);
  if (job->dir == NULL) {
    job->error = errno;
    job->syscall = "opendir";
    return false;
  }
  size_t path_length = strlen(job->path);
  // Room for "<path>/<name>\0": the xattr calls take paths (they follow symlinks, like stat).
  job->member_path = malloc(path_length + 1 + NAME_MAX + 1);
  job->names_capacity = 4096;
  if (job->xattrs != XATTRS_NONE) {
    job->value = malloc(VALUE_CAPACITY);
    job->names = malloc(job->names_capacity);
  }
  if (job->member_path == NULL || (job->xattrs != XATTRS_NONE && (job->value == NULL || job->names == NULL))) {
    job->error = ENOMEM;
    job->syscall = "malloc";
    close_directory(job);
    return false;
  }
  memcpy(job->member_path, job->path, path_length);
  if (path_length == 0 || job->path[path_length - 1] != '/') job->member_path[path_length++] = '/';
  job->path_length = path_length;
  return true;
}

// Reads the next batch: members until the directory ends or the batch is full. At the end or on
// an error the directory is closed here. Runs on the threadpool (or, for a batch read here and
// now, on the JavaScript thread): no Node-API calls here.
static void list_execute(napi_env env, void *data) {
  (void)env;
  list_job *job = data;
  job->error = 0;
  job->syscall = NULL;
  job->count = 0;
  job->bytes.length = job->members.length = job->stats.length = job->attrs.length = job->numbers.length =
      job->wire.length = 0;
  if (!job->opened && !open_directory(job)) return;
  DIR *dir = job->dir;
  int dir_fd = dirfd(dir);
  size_t path_length = job->path_length;
  char *member_path = job->member_path;
  char *value = job->value;

  // The check comes before readdir, so that no member read is left out of both batches.
  while (!batch_full(job)) {
    errno = 0;
    struct dirent *entry = readdir(dir);
    if (entry == NULL) {
      if (errno != 0) {
        job->error = errno;
        job->syscall = "readdir";
      } else {
        job->end = true;
      }
      break;
    }
    const char *name = entry->d_name;
    if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
    size_t name_length = strlen(name);
    // A name that makes the full path too long could not be stat'ed by path: left out, as before.
    if (path_length + name_length >= PATH_MAX) continue;

    struct statx st;
    if (statx(dir_fd, name, AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS | STATX_BTIME, &st) != 0)
      continue;  // vanished, or cannot be stat'ed: left out of the listing
    bool is_symlink = entry->d_type == DT_LNK;
    if (entry->d_type == DT_UNKNOWN) {
      struct stat own;
      is_symlink = fstatat(dir_fd, name, &own, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(own.st_mode);
    }

    uint32_t member[MEMBER_FIELDS] = {(uint32_t)job->bytes.length, (uint32_t)name_length,
                                      is_symlink ? MEMBER_IS_SYMLINK : 0u, 0, 0, 0, 0, 0, 0};
    bool stored = growable_append(&job->bytes, name, name_length) != NULL;
    if (stored && job->xattrs != XATTRS_NONE) {
      memcpy(member_path + path_length, name, name_length + 1);
      stored = read_attributes(job, dir_fd, name, member_path, member, &job->names, &job->names_capacity, value);
    }
    bool has_btime = (st.stx_mask & STATX_BTIME) != 0;
    int64_t fields[STAT_FIELDS] = {
        (int64_t)makedev(st.stx_dev_major, st.stx_dev_minor),
        (int64_t)st.stx_ino,
        st.stx_mode,
        st.stx_uid,
        st.stx_gid,
        (int64_t)st.stx_size,
        st.stx_mtime.tv_sec,
        st.stx_mtime.tv_nsec,
        st.stx_ctime.tv_sec,
        st.stx_ctime.tv_nsec,
        has_btime ? st.stx_btime.tv_sec : 0,
        has_btime ? st.stx_btime.tv_nsec : 0,
    };
    __int128 mtime_ns = (__int128)st.stx_mtime.tv_sec * 1000000000 + st.stx_mtime.tv_nsec;
    __int128 ctime_ns = (__int128)st.stx_ctime.tv_sec * 1000000000 + st.stx_ctime.tv_nsec;
    __int128 btime_ns = has_btime ? (__int128)st.stx_btime.tv_sec * 1000000000 + st.stx_btime.tv_nsec : 0;
    __int128 birth_ns = btime_ns != 0 ? btime_ns : ctime_ns;  // as toStat: ctime where there is none
    char etag[128];
    size_t etag_length = privdav_format_etag(etag, (int64_t)st.stx_ino, (int64_t)st.stx_size, mtime_ns);
    member[5] = (uint32_t)job->bytes.length;
    member[6] = (uint32_t)etag_length;
    double numbers[NUMBER_FIELDS] = {
        (double)(int64_t)st.stx_size,
        privdav_milliseconds(mtime_ns),
        privdav_milliseconds(birth_ns),
        (double)st.stx_mode,
    };
    bool wired = false;
    if (job->wire_prefix != NULL) {
      size_t wire_start = job->wire.length;
      wired = stored &&
              (job->xml != NULL
                   ? put_xml_entry(job, name, name_length, numbers, etag, etag_length, member[4])
                   : put_wire_entry(job, name, name_length, numbers, mtime_ns, birth_ns, etag, etag_length, member[4]));
      if (wired) {
        // Everything JavaScript needs of this member is in its wire text: its name, ETag, stat
        // and numbers are not kept (a third of a big listing's memory).
        job->bytes.length = member[0];
        uint32_t wire_member[MEMBER_FIELDS] = {0, 0, member[2], 0, 0, 0, 0, (uint32_t)wire_start,
                                               (uint32_t)(job->wire.length - wire_start)};
        stored = growable_append(&job->members, wire_member, sizeof wire_member) != NULL;
      } else {
        member[2] |= MEMBER_NEEDS_JS;
        member[7] = (uint32_t)(job->stats.length / sizeof fields);  // its slot in stats and numbers
      }
    }
    if (!wired)
      stored = stored && growable_append(&job->bytes, etag, etag_length) != NULL &&
               growable_append(&job->members, member, sizeof member) != NULL &&
               growable_append(&job->stats, fields, sizeof fields) != NULL &&
               growable_append(&job->numbers, numbers, sizeof numbers) != NULL;
    if (!stored) {
      job->error = ENOMEM;
      job->syscall = "realloc";
      break;
    }
    job->count++;
  }
  if (job->error != 0 || job->end) close_directory(job);
}


// A typed array holding a copy of `source`.
static napi_value typed_array_copy(napi_env env, napi_typedarray_type type, size_t element_size,
                                   const growable *source) {
  void *data = NULL;
  napi_value buffer, array;
  if (napi_create_arraybuffer(env, source->length, &data, &buffer) != napi_ok) return NULL;
  if (source->length > 0) memcpy(data, source->data, source->length);
  if (napi_create_typedarray(env, type, source->length / element_size, buffer, 0, &array) != napi_ok)
    return NULL;
  return array;
}

static napi_value make_result(napi_env env, list_job *job) {
  napi_value result, count, bytes, members, stats, attrs, numbers;
  if (napi_create_object(env, &result) != napi_ok || napi_create_uint32(env, job->count, &count) != napi_ok ||
      napi_create_buffer_copy(env, job->bytes.length, job->bytes.length > 0 ? job->bytes.data : "", NULL,
                              &bytes) != napi_ok)
    return NULL;
  members = typed_array_copy(env, napi_uint32_array, sizeof(uint32_t), &job->members);
  stats = typed_array_copy(env, napi_bigint64_array, sizeof(int64_t), &job->stats);
  attrs = typed_array_copy(env, napi_uint32_array, sizeof(uint32_t), &job->attrs);
  numbers = typed_array_copy(env, napi_float64_array, sizeof(double), &job->numbers);
  if (members == NULL || stats == NULL || attrs == NULL || numbers == NULL) return NULL;
  napi_set_named_property(env, result, "count", count);
  napi_set_named_property(env, result, "bytes", bytes);
  napi_set_named_property(env, result, "members", members);
  napi_set_named_property(env, result, "stats", stats);
  napi_set_named_property(env, result, "attrs", attrs);
  napi_set_named_property(env, result, "numbers", numbers);
  napi_value end;
  napi_get_boolean(env, job->end, &end);
  napi_set_named_property(env, result, "end", end);
  if (job->wire_prefix != NULL) {
    napi_value wire;
    if (napi_create_buffer_copy(env, job->wire.length, job->wire.length > 0 ? job->wire.data : "", NULL, &wire) !=
        napi_ok)
      return NULL;
    napi_set_named_property(env, result, "wire", wire);
  }
  return result;
}

// Frees the batch buffers. They grew by realloc in the shared malloc arena; without a trim the
// freed pages of a big listing stay resident in the worker (tens of MB after a few of them).
static void free_buffers(list_job *job) {
  bool large = job->bytes.capacity + job->members.capacity + job->stats.capacity + job->attrs.capacity +
                   job->numbers.capacity + job->wire.capacity >=
               TRIM_AFTER_BYTES;
  growable_free(&job->wire);
  growable_free(&job->bytes);
  growable_free(&job->members);
  growable_free(&job->stats);
  growable_free(&job->attrs);
  growable_free(&job->numbers);
  if (large) malloc_trim(0);
}

// Nothing more is read: the directory is closed and the buffers freed. The job itself stays
// until its handle is finalized. Not while a batch is in flight.
static void close_listing(list_job *job) {
  close_directory(job);
  free_buffers(job);
  job->closed = true;
}

static void list_job_free(list_job *job) {
  close_listing(job);
  free(job->path);
  free(job->wire_prefix);
  if (job->xml != NULL) xml_template_free(job->xml);
  free(job->xml);
  free(job);
}

static const napi_type_tag listing_tag = {0x7072697664617669ULL, 0x6c697374696e6721ULL};

// The handle's finalizer: a listing abandoned before its end closes its directory here. While a
// batch is in flight the handle is held (job->self), so this comes then only at environment
// teardown: the completion frees the job.
static void finalize_listing(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  list_job *job = data;
  if (job->busy) job->orphaned = true;
  else list_job_free(job);
}

// The batch's result, or NULL with *error set: the batch's own error, or the exception raised
// while building the result (out of memory), taken so that it is reported like any other. After
// the last batch or an error, the listing is closed.
static napi_value outcome(napi_env env, list_job *job, napi_value *error) {
  napi_value result = NULL;
  if (job->error != 0) {
    *error = privdav_errno_error(env, job->error, job->syscall, job->path);
  } else if ((result = make_result(env, job)) == NULL) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) napi_get_and_clear_last_exception(env, error);
    else *error = privdav_errno_error(env, ENOMEM, "listingRead", job->path);
  }
  if (result == NULL || job->end) close_listing(job);
  return result;
}

// Back on the JS thread: build the batch's result, call back. A listing closed while the batch
// was read is closed now, and its batch dropped (the callback gets ECANCELED).
static void list_complete(napi_env env, napi_status status, void *data) {
  list_job *job = data;
  job->busy = false;
  napi_delete_async_work(env, job->work);
  job->work = NULL;
  napi_ref callback_ref = job->callback, self = job->self;
  job->callback = job->self = NULL;
  if (job->orphaned) {
    list_job_free(job);
    return;
  }
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    close_listing(job);
    napi_delete_reference(env, callback_ref);
    napi_delete_reference(env, self);
    return;
  }
  napi_value argv[2] = {NULL, NULL};
  napi_get_null(env, &argv[0]);
  napi_get_undefined(env, &argv[1]);
  if (status != napi_ok || job->close_requested) {
    close_listing(job);
    argv[0] = privdav_errno_error(env, ECANCELED, "listingRead", job->path);
  } else {
    napi_value result = outcome(env, job, &argv[0]);
    if (result != NULL) argv[1] = result;
  }
  napi_value callback = NULL;
  napi_get_reference_value(env, callback_ref, &callback);
  napi_delete_reference(env, callback_ref);
  // From here the handle may be collected, and the job with it: not touched again.
  napi_delete_reference(env, self);
  privdav_call_back(env, callback, 2, argv);
  napi_close_handle_scope(env, scope);
}

// Detaches `buffer` (an ArrayBuffer): its memory is freed now. False with an exception pending
// when V8 refuses.
static bool detach(napi_env env, napi_value buffer, const char *what) {
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, buffer, &detached) == napi_ok && !detached &&
      napi_detach_arraybuffer(env, buffer) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, "ERR_RELEASE", what);
    return false;
  }
  return true;
}

void privdav_listdir_init(void) {
  if (getenv("PRIVDAV_LISTXATTR_BY_PATH") != NULL) atomic_store(&no_listxattrat, true);
}

// releaseListing(listing): detaches the listing's arrays, so their memory is freed now rather
// than whenever the garbage collector gets to them (a listing of 10,000 members holds ~1.5 MB, and
// a worker answering PROPFINDs back to back otherwise carried tens of MB of them). Views made
// from them become empty: only for a listing nothing refers into any more.
napi_value privdav_release_listing(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  static const char *fields[] = {"bytes", "members", "stats", "attrs", "numbers", "wire"};
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_valuetype type;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_object)
    return privdav_throw_type_error(env, "not a listing");
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    napi_value array, buffer;
    bool is_typed = false, has = false;
    // "wire" is there only when wire text was asked for.
    if (i == 5 && (napi_has_named_property(env, argv[0], fields[i], &has) != napi_ok || !has)) continue;
    if (napi_get_named_property(env, argv[0], fields[i], &array) != napi_ok ||
        napi_is_typedarray(env, array, &is_typed) != napi_ok || !is_typed ||
        napi_get_typedarray_info(env, array, NULL, NULL, NULL, &buffer, NULL) != napi_ok)
      return privdav_throw_type_error(env, "not a listing");
    if (!detach(env, buffer, "cannot release the listing")) return NULL;
  }
  return NULL;
}

// releaseArrayBuffer(buffer): detaches an ArrayBuffer nothing else uses any more, so that its
// memory is freed now rather than at the next garbage collection. Every view of it becomes empty.
napi_value privdav_release_array_buffer(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool is_buffer = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || napi_is_arraybuffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer)
    return privdav_throw_type_error(env, "not an ArrayBuffer");
  detach(env, argv[0], "cannot release the ArrayBuffer");
  return NULL;
}

// A string as UTF-8 in new memory (NUL-terminated), at most `max` bytes; NULL when it is not.
static char *utf8_copy(napi_env env, napi_value value, size_t max, size_t *length) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string ||
      napi_get_value_string_utf8(env, value, NULL, 0, length) != napi_ok || *length > max)
    return NULL;
  char *text = malloc(*length + 1);
  if (text != NULL) napi_get_value_string_utf8(env, value, text, *length + 1, length);
  return text;
}

// An array of at most `max_items` strings without NUL, joined as "a\0b\0" into new memory.
static char *joined_strings(napi_env env, napi_value array, uint32_t max_items, size_t max_item_bytes,
                            size_t max_bytes, size_t *joined_length) {
  bool is_array = false;
  uint32_t count = 0;
  if (napi_is_array(env, array, &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, array, &count) != napi_ok || count > max_items)
    return NULL;
  char *joined = malloc(1);
  size_t used = 0;
  for (uint32_t i = 0; i < count && joined != NULL; i++) {
    napi_value item;
    size_t length = 0;
    char *text =
        napi_get_element(env, array, i, &item) == napi_ok ? utf8_copy(env, item, max_item_bytes, &length) : NULL;
    bool fits = text != NULL && strlen(text) == length && used + length + 1 <= max_bytes;
    char *grown = fits ? realloc(joined, used + length + 2) : NULL;
    if (grown == NULL) {
      free(joined);
      joined = NULL;
    } else {
      joined = grown;
      memcpy(joined + used, text, length + 1);
      used += length + 1;
    }
    free(text);
  }
  *joined_length = used;
  return joined;
}

// Limits of a program (common/storage-protocol.ts checks the same before the worker calls here).
#define MAX_PROGRAM_OPS 512
#define MAX_PROGRAM_LITERAL_BYTES (128 * 1024)

// One program: an array of literal strings and slot numbers (enum xml_slot); false when malformed.
static bool get_program(napi_env env, napi_value array, xml_program *program) {
  bool is_array = false;
  uint32_t count = 0;
  if (napi_is_array(env, array, &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, array, &count) != napi_ok || count > MAX_PROGRAM_OPS)
    return false;
  program->ops = calloc(count == 0 ? 1 : count, sizeof *program->ops);
  if (program->ops == NULL) return false;
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    napi_valuetype type;
    xml_op *op = &program->ops[program->count];
    if (napi_get_element(env, array, i, &item) != napi_ok || napi_typeof(env, item, &type) != napi_ok) return false;
    if (type == napi_number) {
      double slot;
      if (napi_get_value_double(env, item, &slot) != napi_ok || !(slot >= 0 && slot < XML_SLOTS) ||
          slot != (double)(int)slot)
        return false;
      op->slot = (int)slot;
      program->uses[op->slot] = true;
      program->slot_ops++;
    } else {
      op->slot = XML_LITERAL;
      if ((op->text = utf8_copy(env, item, MAX_PROGRAM_LITERAL_BYTES, &op->length)) == NULL) return false;
      program->literal_bytes += op->length;
      if (program->literal_bytes > MAX_PROGRAM_LITERAL_BYTES) {
        program->count++;  // freed with the others
        return false;
      }
    }
    program->count++;
  }
  return true;
}

// Reads wire.xml: {file: program, directory: program, types: string[] (extension, type, ...),
// hide: string[]}; false when it is malformed.
static bool get_xml_template(napi_env env, napi_value options, list_job *job) {
  napi_value file, directory, types, hide;
  if (napi_get_named_property(env, options, "file", &file) != napi_ok ||
      napi_get_named_property(env, options, "directory", &directory) != napi_ok ||
      napi_get_named_property(env, options, "types", &types) != napi_ok ||
      napi_get_named_property(env, options, "hide", &hide) != napi_ok)
    return false;
  xml_template *template = calloc(1, sizeof *template);
  if (template == NULL) return false;
  job->xml = template;
  if (!get_program(env, file, &template->file) || !get_program(env, directory, &template->directory))
    return false;
  // The hide bounds are common/storage-protocol.ts's (MAX_RENDER_HIDE_*), with each NUL counted.
  template->types = joined_strings(env, types, 1024, 256, 64 * 1024, &template->types_length);
  template->hide = joined_strings(env, hide, 256, 1024, 16 * 1024 + 256, &template->hide_length);
  if (template->types == NULL || template->hide == NULL) return false;
  // Types come in pairs, and are written as they are: no character that would need an escape.
  uint32_t strings = 0;
  for (size_t i = 0; i < template->types_length; i++) {
    char c = template->types[i];
    if (c == '\0') strings++;
    if (c == '<' || c == '>' || c == '&') return false;
  }
  if (strings % 2 != 0) return false;
  job->xml_room = xml_member_room(template);
  return true;
}

// Reads listingOpen's optional wire argument {prefix: string, maxNameBytes: number, props:
// boolean, xml?: {...}} into the job; false (with a TypeError thrown) when it is malformed.
static bool get_wire_options(napi_env env, napi_value options, list_job *job) {
  napi_value prefix, max_name_bytes, props;
  napi_valuetype type;
  double max;
  size_t length;
  if (napi_typeof(env, options, &type) != napi_ok || type != napi_object ||
      napi_get_named_property(env, options, "prefix", &prefix) != napi_ok ||
      napi_get_named_property(env, options, "maxNameBytes", &max_name_bytes) != napi_ok ||
      napi_get_named_property(env, options, "props", &props) != napi_ok ||
      napi_get_value_string_utf8(env, prefix, NULL, 0, &length) != napi_ok || length == 0 || length >= PATH_MAX * 2 ||
      napi_get_value_double(env, max_name_bytes, &max) != napi_ok || !(max >= 0 && max <= NAME_MAX) ||
      napi_get_value_bool(env, props, &job->wire_props) != napi_ok) {
    privdav_throw_type_error(env, "wire must be {prefix: string, maxNameBytes: 0 to 255, props: boolean}");
    return false;
  }
  job->wire_prefix = malloc(length + 1);
  if (job->wire_prefix == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return false;
  }
  napi_get_value_string_utf8(env, prefix, job->wire_prefix, length + 1, &job->wire_prefix_length);
  job->wire_max_name_bytes = (uint32_t)max;
  // xml: absent or undefined for JSON wire text.
  bool has_xml = false;
  napi_value xml = NULL;
  napi_valuetype xml_type = napi_undefined;
  if (napi_has_named_property(env, options, "xml", &has_xml) != napi_ok ||
      (has_xml && (napi_get_named_property(env, options, "xml", &xml) != napi_ok ||
                   napi_typeof(env, xml, &xml_type) != napi_ok)) ||
      (xml_type != napi_undefined && (xml_type != napi_object || !get_xml_template(env, xml, job)))) {
    privdav_throw_type_error(env, "wire.xml must be {file, directory: (string | slot)[], types: string[], hide: string[]}");
    return false;
  }
  return true;
}

// listingOpen(path: string | Buffer, xattrs: 0 | 1 | 2, wire?: {prefix, maxNameBytes, props}): the handle of
// a listing of `path`, read with listingRead. The directory is opened by the first batch.
napi_value privdav_listing_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 2) return privdav_throw_type_error(env, "listingOpen(path, xattrs, wire?)");

  double mode;
  napi_valuetype type;
  if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_number ||
      napi_get_value_double(env, argv[1], &mode) != napi_ok ||
      !(mode == XATTRS_NONE || mode == XATTRS_NAMES || mode == XATTRS_VALUES))
    return privdav_throw_type_error(env, "xattrs must be 0 (none), 1 (names) or 2 (values)");

  list_job *job = calloc(1, sizeof *job);
  char *path = malloc(PATH_MAX);
  if (job == NULL || path == NULL) {
    free(job);
    free(path);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  job->path = path;
  // A string, or a Buffer for a directory whose name is not UTF-8; an embedded NUL would silently
  // name another directory.
  if (!privdav_get_path(env, argv[0], path, PATH_MAX)) {
    list_job_free(job);
    return privdav_throw_type_error(env, "path must be a string or Buffer of 1 to PATH_MAX - 1 bytes without NUL");
  }
  job->xattrs = (enum xattr_mode)mode;
  if (argc >= 3 && napi_typeof(env, argv[2], &type) == napi_ok && type != napi_undefined &&
      !get_wire_options(env, argv[2], job)) {
    list_job_free(job);
    return NULL;
  }
  napi_value handle;
  if (napi_create_external(env, job, finalize_listing, NULL, &handle) != napi_ok) {
    list_job_free(job);
    return NULL;
  }
  if (napi_type_tag_object(env, handle, &listing_tag) != napi_ok) return NULL;  // freed by the finalizer
  return handle;
}

// The listing behind a listingOpen handle, or NULL with a TypeError thrown.
static list_job *listing_of(napi_env env, napi_value handle) {
  bool tagged = false;
  void *data = NULL;
  if (napi_check_object_type_tag(env, handle, &listing_tag, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, handle, &data) != napi_ok || data == NULL) {
    privdav_throw_type_error(env, "not a listing handle");
    return NULL;
  }
  return data;
}

// listingRead(handle, maxMembers: 1 to 2^32 - 1, callback(error, batch) | null): the next batch of
// at most maxMembers members (fewer where MAX_BATCH_BYTES is reached first); `end` tells the last.
// With a null callback the batch is read here and now and returned (or its error thrown): for a
// small directory a threadpool job costs more than the listing (two thread wake-ups on the
// request's path). Refused while a batch is in flight (ERR_LISTING_BUSY) and once the listing
// ended, failed or was closed (ERR_LISTING_CLOSED).
napi_value privdav_listing_read(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 3) return privdav_throw_type_error(env, "listingRead(handle, maxMembers, callback)");
  list_job *job = listing_of(env, argv[0]);
  if (job == NULL) return NULL;
  double max_members;
  napi_valuetype type;
  if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_number ||
      napi_get_value_double(env, argv[1], &max_members) != napi_ok ||
      !(max_members >= 1 && max_members <= UINT32_MAX) || max_members != (double)(uint32_t)max_members)
    return privdav_throw_type_error(env, "maxMembers must be an integer 1 to 2^32 - 1");
  napi_valuetype callback_type;
  if (napi_typeof(env, argv[2], &callback_type) != napi_ok ||
      (callback_type != napi_function && callback_type != napi_null))
    return privdav_throw_type_error(env, "callback must be a function, or null to read here and now");
  // One DIR stream, read by one thread at a time, in order.
  if (job->busy) {
    napi_throw_error(env, "ERR_LISTING_BUSY", "a batch of this listing is being read");
    return NULL;
  }
  if (job->closed || job->close_requested) {
    napi_throw_error(env, "ERR_LISTING_CLOSED", "the listing is closed");
    return NULL;
  }
  job->max_members = (uint32_t)max_members;

  if (callback_type == napi_null) {
    list_execute(env, job);
    napi_value error = NULL;
    napi_value result = outcome(env, job, &error);
    if (result == NULL) napi_throw(env, error);
    return result;
  }

  napi_value resource_name;
  napi_create_string_utf8(env, "PRIVDAV_LISTING_READ", NAPI_AUTO_LENGTH, &resource_name);
  if (napi_create_reference(env, argv[2], 1, &job->callback) != napi_ok ||
      napi_create_reference(env, argv[0], 1, &job->self) != napi_ok ||
      napi_create_async_work(env, NULL, resource_name, list_execute, list_complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    if (job->work != NULL) napi_delete_async_work(env, job->work);
    if (job->callback != NULL) napi_delete_reference(env, job->callback);
    if (job->self != NULL) napi_delete_reference(env, job->self);
    job->work = NULL;
    job->callback = job->self = NULL;
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, "ENOMEM", "cannot queue the batch");
    return NULL;
  }
  job->busy = true;
  return NULL;
}

// listingClose(handle): nothing more is read; the directory is closed now, or when the batch in
// flight completes (its callback then gets ECANCELED). Idempotent.
napi_value privdav_listing_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1) return privdav_throw_type_error(env, "listingClose(handle)");
  list_job *job = listing_of(env, argv[0]);
  if (job == NULL) return NULL;
  if (job->busy) job->close_requested = true;
  else if (!job->closed) close_listing(job);
  return NULL;
}

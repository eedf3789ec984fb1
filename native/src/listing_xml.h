// listing_xml.h — a PROPFIND <D:response> for one listed member, rendered by the addon
// (listing_xml.c), so that neither the worker nor the web process makes a JavaScript object, a
// JSON text or an XML string per member of a big listing. See listing_xml.c for which members.
#ifndef PRIVDAV_LISTING_XML_H
#define PRIVDAV_LISTING_XML_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// A member's response is a program: literal text and the member's values, in the order the web
// process gives (src/dav/methods/propfind.ts builds one for files and one for collections from
// what its own renderer would write, src/dav/props.ts the properties' parts).
enum xml_slot {
  XML_HREF = 0,       // the name as an href segment: percent-encoded, escaped
  XML_CREATED = 1,    // creation date, RFC 3339
  XML_NAME = 2,       // the name as text, escaped (displayname)
  XML_SIZE = 3,       // decimal
  XML_TYPE = 4,       // content type by extension
  XML_ETAG = 5,       // with its quotes
  XML_MODIFIED = 6,   // modification date, IMF-fixdate
  XML_SLOTS = 7,
};
#define XML_LITERAL (-1)

typedef struct {
  int slot;  // an xml_slot, or XML_LITERAL
  char *text;
  size_t length;
} xml_op;

typedef struct {
  xml_op *ops;
  size_t count;
  size_t literal_bytes;
  size_t slot_ops;
  bool uses[XML_SLOTS];
} xml_program;

typedef struct {
  xml_program file, directory;
  // "ext\0type\0ext\0type\0...\0": extensions in lower case (src/dav/props.ts's table).
  char *types;
  size_t types_length;
  // "pattern\0pattern\0...\0": shares.hide's patterns and the names reserved here; a member whose
  // name may match one is left to JavaScript, which decides (src/dav/hide.ts).
  char *hide;
  size_t hide_length;
} xml_template;

// What one member's response needs beside its name.
typedef struct {
  bool is_directory;
  double size;
  double mtime_ms;
  double birthtime_ms;
  const char *etag;  // with its quotes: hex digits and '-' between them
  size_t etag_length;
} xml_member;

// Room one slot's value takes at most: a 255-byte name percent-encoded (3 bytes a byte) or
// escaped (5), a date, a size, an ETag, a content type (types are at most 256 bytes).
#define XML_SLOT_ROOM 1280

// The most one member's response takes under `template`.
size_t xml_member_room(const xml_template *template);

// Renders the member's response into `out` (at least xml_member_room bytes) and returns its
// length; 0 when the member is not one this renders exactly as JavaScript would
// (its name, its times or its size): then JavaScript renders it.
size_t xml_render_member(char *out, const xml_template *template, const char *name, size_t name_length,
                         const xml_member *member);

void xml_template_free(xml_template *template);

// The length of the strict UTF-8 sequence at `at` (at most `left` bytes), or 0.
size_t privdav_utf8_sequence(const unsigned char *at, size_t left);

// Writes `value` in decimal (at most 20 bytes) at `out`; returns the end.
char *privdav_put_decimal(char *out, int64_t value);

#endif

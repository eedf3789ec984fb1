// listing_xml.h — a PROPFIND allprop <D:response> for one listed member, rendered by the addon
// (listing_xml.c), so that neither the worker nor the web process makes a JavaScript object, a
// JSON text or an XML string per member of a big listing. See listing_xml.c for which members.
#ifndef PRIVDAV_LISTING_XML_H
#define PRIVDAV_LISTING_XML_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// The fixed text between the variable parts of one response, in this order (src/dav/props.ts and
// methods/propfind.ts make it, so that the XML vocabulary stays there):
//   0 href open (with the parent's href) · name · "/" for a collection · 1 · creationdate ·
//   2 · displayname · file: 3 · getcontentlength · 4 · getcontenttype · 5 · collection: 6 ·
//   getetag · 7 · getlastmodified · file: 8 / collection: 9 (the rest of the response).
#define XML_PIECES 10

typedef struct {
  char *pieces[XML_PIECES];
  size_t piece_lengths[XML_PIECES];
  // "ext\0type\0ext\0type\0...\0": extensions in lower case (src/dav/props.ts's table).
  char *types;
  size_t types_length;
  // "pattern\0pattern\0...\0": shares.hide's patterns and the names reserved here; a member whose
  // name may match one is left to JavaScript, which decides (src/dav/hide.ts).
  char *hide;
  size_t hide_length;
  bool hide_has_non_ascii;  // some pattern has a non-ASCII character
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

// Room the longest response takes beside the template's pieces: a 255-byte name percent-encoded
// (3 bytes per byte) and escaped (up to 5), two dates, a size, an ETag, a content type.
#define XML_MEMBER_ROOM 4096

// Renders the member's response into `out` (at least the pieces' total + XML_MEMBER_ROOM bytes)
// and returns its length; 0 when the member is not one this renders exactly as JavaScript would
// (its name, its times or its size): then JavaScript renders it.
size_t xml_render_member(char *out, const xml_template *template, const char *name, size_t name_length,
                         const xml_member *member);

void xml_template_free(xml_template *template);

// The length of the strict UTF-8 sequence at `at` (at most `left` bytes), or 0.
size_t privdav_utf8_sequence(const unsigned char *at, size_t left);

#endif

// listing_xml.c — one listed member's PROPFIND <D:response>, rendered here from what listdir.c
// read (name, stat, ETag) by a program of literal text and values the web process made. The
// worker sends these bytes and the web process writes them out as they are: a member of a big
// listing then costs no JavaScript object, JSON text or XML string on either side.
//
// Only members whose response is certain to come out byte for byte as src/dav/methods/propfind.ts
// renders it are rendered here; any other member is left to JavaScript (xml_render_member returns
// 0): a name that is not plain UTF-8 or needs more than the escapes below, a name shares.hide may
// hide or privdav reserves, dates outside the years 1000-9999, an extension that is not ASCII.
// test/e2e/propfind-rendered.test.ts compares both renderings over such names.
#include "listing_xml.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>  // struct tm

size_t privdav_utf8_sequence(const unsigned char *at, size_t left) {
  unsigned char lead = at[0];
  size_t length;
  unsigned char low = 0x80, high = 0xbf;  // the allowed range of the second byte
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) length = 2;
  else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else
    return 0;
  if (left < length || at[1] < low || at[1] > high) return 0;
  for (size_t i = 2; i < length; i++)
    if (at[i] < 0x80 || at[i] > 0xbf) return 0;
  return length;
}

// A name the text below carries as JavaScript would: strict UTF-8, no character XML 1.0 lacks
// (controls, U+FFFE, U+FFFF), no backslash (helper/layout.ts has rules about "\\." pieces).
static bool is_plain_name(const unsigned char *name, size_t length, bool *ascii) {
  *ascii = true;
  for (size_t i = 0; i < length;) {
    unsigned char c = name[i];
    if (c < 0x20 || c == '\\') return false;
    size_t n = privdav_utf8_sequence(name + i, length - i);
    if (n == 0) return false;
    if (n == 3 && c == 0xef && name[i + 1] == 0xbf && (name[i + 2] == 0xbe || name[i + 2] == 0xbf)) return false;
    if (n > 1) *ascii = false;
    i += n;
  }
  return true;
}

// `*` any run of characters, `?` one; both strings ASCII (src/dav/hide.ts globMatches). A `*`
// in the pattern is a wildcard even where the name has a `*` too: it is tried before a literal.
static bool glob_matches(const char *pattern, const char *name, size_t name_length) {
  size_t p = 0, n = 0, star = (size_t)-1, resume = 0;
  size_t pattern_length = strlen(pattern);
  while (n < name_length) {
    if (p < pattern_length && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (p < pattern_length && (pattern[p] == '?' || pattern[p] == name[n])) {
      p++;
      n++;
    } else if (star != (size_t)-1) {
      p = star + 1;
      n = ++resume;
    } else
      return false;
  }
  while (p < pattern_length && pattern[p] == '*') p++;
  return p == pattern_length;
}

// True when JavaScript must judge whether the member is listed at all.
static bool may_be_hidden(const xml_template *template, const char *name, size_t length, bool ascii) {
  if (length >= 9 && memcmp(name, ".privdav-", 9) == 0) return true;  // common/names.ts temporaries
  if (template->hide_length == 0) return false;
  if (!ascii) return true;  // JavaScript compares in NFC
  for (const char *pattern = template->hide; pattern < template->hide + template->hide_length;
       pattern += strlen(pattern) + 1) {
    bool pattern_ascii = true;
    for (const char *c = pattern; *c != '\0'; c++)
      if ((unsigned char)*c >= 0x80) pattern_ascii = false;
    // A pattern with a non-ASCII character matches only names that have one.
    if (pattern_ascii && glob_matches(pattern, name, length)) return true;
  }
  return false;
}

static char *put(char *out, const void *bytes, size_t length) {
  memcpy(out, bytes, length);
  return out + length;
}

char *privdav_put_decimal(char *out, int64_t value) {
  char digits[24];
  int n = 0;
  uint64_t magnitude = value < 0 ? -(uint64_t)value : (uint64_t)value;
  if (value < 0) *out++ = '-';
  do {
    digits[n++] = (char)('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  while (n > 0) *out++ = digits[--n];
  return out;
}

static char *put_two(char *out, int value) {
  *out++ = (char)('0' + value / 10);
  *out++ = (char)('0' + value % 10);
  return out;
}

static char *put_four(char *out, int value) {
  out = put_two(out, value / 100);
  return put_two(out, value % 100);
}

// The UTC time of Math.floor(ms / 1000) seconds, as props.ts's isoDate and httpDate take it;
// false outside the years both print with four digits as this does. By arithmetic (the proleptic
// Gregorian calendar, days from 1970-01-01): gmtime_r takes glibc's timezone lock every call.
static bool utc_time(double ms, struct tm *tm) {
  double seconds = floor(ms / 1000.0);
  // 1000-01-01 and 10000-01-01.
  if (!(seconds >= -30610224000.0 && seconds < 253402300800.0)) return false;
  int64_t t = (int64_t)seconds;
  int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
  int64_t second_of_day = t - days * 86400;
  tm->tm_hour = (int)(second_of_day / 3600);
  tm->tm_min = (int)(second_of_day / 60 % 60);
  tm->tm_sec = (int)(second_of_day % 60);
  tm->tm_wday = (int)(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday
  // Civil from days (H. Hinnant): eras of 400 years from 0000-03-01.
  int64_t z = days + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t day_of_era = z - era * 146097;
  int64_t year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  int64_t month_index = (5 * day_of_year + 2) / 153;  // from March
  tm->tm_mday = (int)(day_of_year - (153 * month_index + 2) / 5 + 1);
  tm->tm_mon = (int)(month_index < 10 ? month_index + 2 : month_index - 10);
  tm->tm_year = (int)(year_of_era + era * 400 + (tm->tm_mon <= 1 ? 1 : 0) - 1900);
  return tm->tm_year + 1900 >= 1000 && tm->tm_year + 1900 <= 9999;
}

// Date.prototype.toISOString().slice(0, 19) + "Z".
static char *put_iso_date(char *out, const struct tm *tm) {
  out = put_four(out, tm->tm_year + 1900);
  *out++ = '-';
  out = put_two(out, tm->tm_mon + 1);
  *out++ = '-';
  out = put_two(out, tm->tm_mday);
  *out++ = 'T';
  out = put_two(out, tm->tm_hour);
  *out++ = ':';
  out = put_two(out, tm->tm_min);
  *out++ = ':';
  out = put_two(out, tm->tm_sec);
  *out++ = 'Z';
  return out;
}

// Date.prototype.toUTCString(): IMF-fixdate.
static char *put_http_date(char *out, const struct tm *tm) {
  static const char days[] = "SunMonTueWedThuFriSat";
  static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  out = put(out, days + 3 * tm->tm_wday, 3);
  out = put(out, ", ", 2);
  out = put_two(out, tm->tm_mday);
  *out++ = ' ';
  out = put(out, months + 3 * tm->tm_mon, 3);
  *out++ = ' ';
  out = put_four(out, tm->tm_year + 1900);
  *out++ = ' ';
  out = put_two(out, tm->tm_hour);
  *out++ = ':';
  out = put_two(out, tm->tm_min);
  *out++ = ':';
  out = put_two(out, tm->tm_sec);
  return put(out, " GMT", 4);
}

// src/dav/paths.ts SAFE_SEGMENT: a segment of only these goes out as it is.
static bool is_safe_segment_byte(unsigned char c) {
  return c != '\0' && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         strchr("-._~!$&'()*+,;=:@", c) != NULL);
}

// What encodeURIComponent leaves as it is.
static bool is_uri_component_byte(unsigned char c) {
  return c != '\0' && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         strchr("-_.!~*'()", c) != NULL);
}

// escapeXml(encodeSegment(name)): as it is when every byte is safe ('&' escaped), otherwise
// encodeURIComponent's percent-encoding of the UTF-8 bytes (which leaves nothing to escape) —
// except for a name with a character beyond U+FFFF: encodeSegment's ANY_SURROGATE test also finds
// the surrogate pair of such a character, and it then encodes byte by byte, leaving the safe
// ASCII bytes as they are (so ";", "$", "&", "=", ... stay, and '&' is escaped).
static char *put_href_segment(char *out, const unsigned char *name, size_t length) {
  bool safe = true, astral = false;
  for (size_t i = 0; i < length; i++) {
    if (!is_safe_segment_byte(name[i])) safe = false;
    if (name[i] >= 0xf0) astral = true;  // the lead byte of a 4-byte sequence (a plain name's)
  }
  for (size_t i = 0; i < length; i++) {
    unsigned char c = name[i];
    if (safe || (astral && c < 0x80 && is_safe_segment_byte(c))) {
      if (c == '&') out = put(out, "&amp;", 5);
      else *out++ = (char)c;
    } else if (!astral && is_uri_component_byte(c)) {
      *out++ = (char)c;
    } else {
      *out++ = '%';
      *out++ = "0123456789ABCDEF"[c >> 4];
      *out++ = "0123456789ABCDEF"[c & 15];
    }
  }
  return out;
}

// escapeXmlText for a plain name: &, < and >.
static char *put_text(char *out, const char *text, size_t length) {
  for (size_t i = 0; i < length; i++) {
    char c = text[i];
    if (c == '&') out = put(out, "&amp;", 5);
    else if (c == '<') out = put(out, "&lt;", 4);
    else if (c == '>') out = put(out, "&gt;", 4);
    else *out++ = c;
  }
  return out;
}

// props.ts contentTypeFor: by the extension after the last dot, in any case; NULL when the
// extension is not ASCII (JavaScript's toLowerCase then decides).
static const char *content_type(const xml_template *template, const char *name, size_t length, size_t *type_length) {
  static const char fallback[] = "application/octet-stream";
  const char *dot = NULL;
  for (size_t i = 0; i < length; i++)
    if (name[i] == '.') dot = name + i;
  *type_length = sizeof fallback - 1;
  if (dot == NULL) return fallback;
  const char *extension = dot + 1;
  size_t extension_length = (size_t)(name + length - extension);
  for (size_t i = 0; i < extension_length; i++)
    if ((unsigned char)extension[i] >= 0x80) return NULL;
  for (const char *key = template->types; key < template->types + template->types_length;) {
    size_t key_length = strlen(key);
    const char *type = key + key_length + 1;
    size_t length_of_type = strlen(type);
    if (key_length == extension_length && strncasecmp(key, extension, extension_length) == 0) {
      *type_length = length_of_type;
      return type;
    }
    key = type + length_of_type + 1;
  }
  return fallback;
}

size_t xml_member_room(const xml_template *template) {
  size_t file = template->file.literal_bytes + template->file.slot_ops * XML_SLOT_ROOM;
  size_t directory = template->directory.literal_bytes + template->directory.slot_ops * XML_SLOT_ROOM;
  return file > directory ? file : directory;
}

size_t xml_render_member(char *out, const xml_template *template, const char *name, size_t name_length,
                         const xml_member *member) {
  bool ascii;
  if (!is_plain_name((const unsigned char *)name, name_length, &ascii) ||
      may_be_hidden(template, name, name_length, ascii))
    return 0;
  const xml_program *program = member->is_directory ? &template->directory : &template->file;
  // Every value the program uses is checked before anything is written.
  struct tm created, modified;
  if (program->uses[XML_CREATED] && !utc_time(member->birthtime_ms, &created)) return 0;
  if (program->uses[XML_MODIFIED] && !utc_time(member->mtime_ms, &modified)) return 0;
  const char *type = NULL;
  size_t type_length = 0;
  if (program->uses[XML_TYPE] && (type = content_type(template, name, name_length, &type_length)) == NULL) return 0;
  if (program->uses[XML_SIZE] && !(member->size >= 0 && member->size < 9007199254740992.0)) return 0;
  char *at = out;
  for (size_t i = 0; i < program->count; i++) {
    const xml_op *op = &program->ops[i];
    switch (op->slot) {
      case XML_LITERAL: at = put(at, op->text, op->length); break;
      case XML_HREF: at = put_href_segment(at, (const unsigned char *)name, name_length); break;
      case XML_CREATED: at = put_iso_date(at, &created); break;
      case XML_NAME: at = put_text(at, name, name_length); break;
      case XML_SIZE: at = privdav_put_decimal(at, (int64_t)member->size); break;
      case XML_TYPE: at = put(at, type, type_length); break;
      case XML_ETAG: at = put(at, member->etag, member->etag_length); break;
      case XML_MODIFIED: at = put_http_date(at, &modified); break;
    }
  }
  return (size_t)(at - out);
}

static void program_free(xml_program *program) {
  for (size_t i = 0; i < program->count; i++) free(program->ops[i].text);
  free(program->ops);
}

void xml_template_free(xml_template *template) {
  program_free(&template->file);
  program_free(&template->directory);
  free(template->types);
  free(template->hide);
  memset(template, 0, sizeof *template);
}

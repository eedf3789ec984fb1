// Content types by file extension: DAV:getcontenttype and GET's Content-Type (src/dav/props.ts),
// and the same table for the worker's rendered listings (native/src/listing_xml.c), so that both
// name a file's type alike.

const CONTENT_TYPES: Record<string, string> = {
  txt: 'text/plain; charset=utf-8',
  html: 'text/html; charset=utf-8',
  htm: 'text/html; charset=utf-8',
  xhtml: 'application/xhtml+xml',
  css: 'text/css; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  md: 'text/markdown; charset=utf-8',
  xml: 'application/xml',
  js: 'text/javascript; charset=utf-8',
  mjs: 'text/javascript; charset=utf-8',
  json: 'application/json',
  pdf: 'application/pdf',
  zip: 'application/zip',
  gz: 'application/gzip',
  tar: 'application/x-tar',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  svg: 'image/svg+xml',
  ico: 'image/vnd.microsoft.icon',
  mp3: 'audio/mpeg',
  ogg: 'audio/ogg',
  wav: 'audio/wav',
  mp4: 'video/mp4',
  webm: 'video/webm',
  doc: 'application/msword',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xls: 'application/vnd.ms-excel',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  ppt: 'application/vnd.ms-powerpoint',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  odt: 'application/vnd.oasis.opendocument.text',
  ods: 'application/vnd.oasis.opendocument.spreadsheet',
};

// A Map, not the object: "x.constructor" or "x.__proto__" must not find Object's own members.
const CONTENT_TYPE_BY_EXTENSION = new Map(Object.entries(CONTENT_TYPES));

export function contentTypeFor(path: string): string {
  const dot = path.lastIndexOf('.');
  if (dot === -1 || dot < path.lastIndexOf('/')) return 'application/octet-stream';
  const extension = path.slice(dot + 1);
  // Most names spell their extension in lower case: looked up as is before it is lowered.
  return (
    CONTENT_TYPE_BY_EXTENSION.get(extension) ??
    CONTENT_TYPE_BY_EXTENSION.get(extension.toLowerCase()) ??
    'application/octet-stream'
  );
}

/** The table as [extension, type, extension, type, ...] (extensions in lower case), for the addon. */
export const CONTENT_TYPE_PAIRS: readonly string[] = Object.entries(CONTENT_TYPES).flat();

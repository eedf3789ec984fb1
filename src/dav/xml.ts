// Reading and writing XML: bounded request bodies, a namespace-aware parse with no DTD and no
// entities beyond the five predefined ones, and serialisation with correct namespace declarations.
import type * as http from 'node:http';
import { SaxesParser, type SaxesTagNS } from 'saxes';
import { DavError } from './errors';

export const DAV_NS = 'DAV:';

export interface XmlElement {
  ns: string;
  local: string;
  /** The prefix the client used; kept so that stored dead properties read back as written. */
  prefix: string;
  attributes: XmlAttribute[];
  children: XmlNode[];
}

export interface XmlAttribute {
  ns: string;
  local: string;
  prefix: string;
  value: string;
}

export type XmlNode = XmlElement | string;

/** Deep enough for any real WebDAV body and dead property; shallow enough to stop nesting bombs. */
export const MAX_XML_DEPTH = 64;

/** True when the request announces a body (Content-Length > 0 or a chunked Transfer-Encoding). */
export function hasRequestBody(req: http.IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

/**
 * Reads a request body of at most maxBytes. A declared Content-Length above the bound is refused
 * before a byte is read; a chunked body is refused as soon as it passes the bound.
 */
export function readBoundedBody(req: http.IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) {
    return Promise.reject(new DavError(413, 'request body too large'));
  }
  if (!hasRequestBody(req)) return Promise.resolve(Buffer.alloc(0));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > maxBytes) {
        cleanup();
        req.pause();
        reject(new DavError(413, 'request body too large'));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total));
    };
    const onError = (): void => {
      cleanup();
      reject(new DavError(400, 'request body aborted'));
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onError);
  });
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

class XmlRefused extends Error {}

/** Parses a UTF-8 XML document into an element tree, or throws DavError 400. */
export function parseXml(body: Buffer): XmlElement {
  let text: string;
  try {
    text = UTF8.decode(body);
  } catch {
    throw new DavError(400, 'XML body is not valid UTF-8');
  }
  try {
    return parseTree(text);
  } catch (error) {
    const reason = error instanceof XmlRefused ? error.message : 'malformed XML';
    throw new DavError(400, reason.length > 120 ? reason.slice(0, 120) : reason);
  }
}

/**
 * Parses text that must be one XML document; null when it is not (malformed, a DTD, too deep, no
 * root). The same parser and refusals as request bodies: for dead property values read back from
 * xattrs, which anyone with a shell may have written.
 */
export function parseXmlOrNull(text: string): XmlElement | null {
  try {
    return parseTree(text);
  } catch {
    return null;
  }
}

function parseTree(text: string): XmlElement {
  const parser = new SaxesParser({ xmlns: true, position: false });
  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;

  parser.on('doctype', () => {
    // No DTDs at all: they are the door to entity expansion (billion laughs) and external fetches.
    throw new XmlRefused('DOCTYPE is not allowed');
  });
  parser.on('opentag', (tag: SaxesTagNS) => {
    if (stack.length >= MAX_XML_DEPTH) throw new XmlRefused('XML nested too deeply');
    const element = elementFromTag(tag);
    if (stack.length === 0) root = element;
    else stack[stack.length - 1].children.push(element);
    stack.push(element);
  });
  parser.on('closetag', () => {
    stack.pop();
  });
  parser.on('text', (value: string) => {
    if (stack.length > 0) stack[stack.length - 1].children.push(value);
  });
  parser.on('cdata', (value: string) => {
    if (stack.length > 0) stack[stack.length - 1].children.push(value);
  });
  parser.on('error', (error: Error) => {
    throw new XmlRefused(error.message);
  });
  parser.write(text).close();
  if (root === null) throw new XmlRefused('XML body has no root element');
  return root;
}

function elementFromTag(tag: SaxesTagNS): XmlElement {
  const attributes: XmlAttribute[] = [];
  for (const name in tag.attributes) {
    const attribute = tag.attributes[name];
    // Namespace declarations are re-derived on output, where they are needed.
    if (attribute.prefix === 'xmlns' || (attribute.prefix === '' && attribute.local === 'xmlns')) continue;
    attributes.push({
      ns: attribute.uri,
      local: attribute.local,
      prefix: attribute.prefix,
      value: attribute.value,
    });
  }
  return { ns: tag.uri, local: tag.local, prefix: tag.prefix, attributes, children: [] };
}

/** The element's child elements, skipping text (whitespace between elements). */
export function childElements(element: XmlElement): XmlElement[] {
  const result: XmlElement[] = [];
  for (const child of element.children) if (typeof child !== 'string') result.push(child);
  return result;
}

export function isDavElement(node: XmlNode, local: string): node is XmlElement {
  return typeof node !== 'string' && node.ns === DAV_NS && node.local === local;
}

export function textContent(element: XmlElement): string {
  let text = '';
  for (const child of element.children) text += typeof child === 'string' ? child : textContent(child);
  return text;
}

/** Clark notation `{namespace}local`, the key of a property everywhere below the parser. */
export function clarkName(element: { ns: string; local: string }): string {
  return `{${element.ns}}${element.local}`;
}

export function splitClark(name: string): { ns: string; local: string } {
  const close = name.indexOf('}');
  return { ns: name.slice(1, close), local: name.slice(close + 1) };
}

/**
 * Serialises an element as self-contained XML: every prefix it uses is declared on the first
 * element that needs it, so the text can be embedded in any document unchanged.
 */
export function serializeElement(element: XmlElement): string {
  return serializeInScope(element, new Map([['', '']]));
}

function serializeInScope(element: XmlElement, scope: Map<string, string>): string {
  let declarations = '';
  let inner = scope;
  const declare = (prefix: string, ns: string): void => {
    if (inner.get(prefix) === ns) return;
    if (inner === scope) inner = new Map(scope);
    inner.set(prefix, ns);
    declarations += prefix === '' ? ` xmlns="${escapeXml(ns)}"` : ` xmlns:${prefix}="${escapeXml(ns)}"`;
  };
  // A namespaced element the client wrote unprefixed keeps the default namespace; an element in
  // no namespace must not inherit one.
  const prefix = element.ns === '' ? '' : element.prefix;
  declare(prefix, element.ns);
  const name = prefix === '' ? element.local : `${prefix}:${element.local}`;
  let attributes = '';
  for (const attribute of element.attributes) {
    let attributeName = attribute.local;
    if (attribute.ns !== '') {
      if (attribute.prefix === 'xml') attributeName = `xml:${attribute.local}`;
      else {
        declare(attribute.prefix, attribute.ns);
        attributeName = `${attribute.prefix}:${attribute.local}`;
      }
    }
    attributes += ` ${attributeName}="${escapeXml(attribute.value)}"`;
  }
  if (element.children.length === 0) return `<${name}${declarations}${attributes}/>`;
  let content = '';
  for (const child of element.children) {
    content += typeof child === 'string' ? escapeXml(child) : serializeInScope(child, inner);
  }
  return `<${name}${declarations}${attributes}>${content}</${name}>`;
}

/** An empty element for a property name, declaring its namespace (dead props: any namespace). */
export function emptyPropertyElement(name: string): string {
  const { ns, local } = splitClark(name);
  if (ns === DAV_NS) return `<D:${local}/>`;
  if (ns === '') return `<${local}/>`;
  return `<X:${local} xmlns:X="${escapeXml(ns)}"/>`;
}

const XML_SPECIAL_ALL = /[&<>"\r\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]/g;

/**
 * Escapes text for element content and attribute values alike. Characters XML 1.0 cannot carry
 * at all (control characters in a file name) become U+FFFD so the document stays well-formed.
 */
export function escapeXml(text: string): string {
  if (isPlainText(text, true)) return text;
  return text.replace(XML_SPECIAL_ALL, escapeCharacter);
}

const TEXT_SPECIAL_ALL = /[&<>\r\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]/g;

/**
 * escapeXml for element content only, where a double quote needs no escape: an ETag such as
 * "1a-2b-3c" goes out as it is instead of through the replacing path on every entry.
 */
export function escapeXmlText(text: string): string {
  if (isPlainText(text, false)) return text;
  return text.replace(TEXT_SPECIAL_ALL, escapeCharacter);
}

/**
 * True when `text` has nothing to escape: no &, <, >, no " when `quoteToo`, no character below U+0020 or
 * at U+FFFE/U+FFFF (a tab or newline takes the regular expression's path, which keeps them). A
 * loop over the character codes, because this runs for several strings of every listed entry and
 * the regular expressions' test cost more than the rest of an href's rendering.
 */
function isPlainText(text: string, quoteToo: boolean): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 38 /* & */ || c === 60 /* < */ || c === 62 /* > */ || c >= 0xfffe) return false;
    if (c === 34 /* " */ && quoteToo) return false;
  }
  return true;
}

function escapeCharacter(c: string): string {
  switch (c) {
    case '&':
      return '&amp;';
    case '<':
      return '&lt;';
    case '>':
      return '&gt;';
    case '"':
      return '&quot;';
    case '\r':
      return '&#13;';
    default:
      return '\uFFFD';
  }
}

export const XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n';

// Dead properties checked where they are rendered. Their values come from xattrs, which the owner
// (or any tool of theirs) may have written outside WebDAV: spliced in unchecked, one could close
// <D:prop> and forge responses in another user's multistatus. Only a value that is one well-formed
// element named exactly as its property goes out; anything else is left out.
import { clarkName, DAV_NS, parseXmlOrNull, serializeElement, splitClark } from './xml';

// XML Namespaces NCName: an XML Name without ":" (the characters of XML 1.0 5th edition §2.3).
const NC_NAME_START =
  'A-Z_a-z\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C\\u200D' +
  '\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD\\u{10000}-\\u{EFFFF}';
// The spec's own ranges, combining marks (U+0300..) and joiners (U+200C/D) included on purpose.
/* eslint-disable no-misleading-character-class */
const NC_NAME = new RegExp(
  `^[${NC_NAME_START}][${NC_NAME_START}\\-.0-9\\u00B7\\u0300-\\u036F\\u203F-\\u2040]*$`,
  'u',
);
/* eslint-enable no-misleading-character-class */
// A namespace name is an attribute value in our output: no characters XML cannot carry.
const BAD_NAMESPACE_CHARACTER =
  /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * True when a Clark name `{ns}local` read from storage may be rendered as an element name: local
 * is an NCName, ns is representable, and it is not a DAV: name (those are the server's own: a
 * stored one could only forge a live property such as lockdiscovery).
 */
export function isRenderablePropertyName(name: string): boolean {
  if (name.charCodeAt(0) !== 123 /* { */) return false;
  const close = name.indexOf('}');
  if (close < 0) return false;
  const { ns, local } = splitClark(name);
  return ns !== DAV_NS && NC_NAME.test(local) && !BAD_NAMESPACE_CHARACTER.test(ns) && !ns.includes('}');
}

/**
 * The stored value of property `name` as XML safe to splice into a reply, else null. It is
 * written out again from the parsed tree, not passed through: a valid document may still carry
 * an XML declaration, comments or processing instructions around its element that are not
 * allowed in the middle of ours.
 */
export function renderableDeadProperty(name: string, xml: string): string | null {
  if (!isRenderablePropertyName(name)) return null;
  const element = parseXmlOrNull(xml);
  if (element === null || clarkName(element) !== name) return null;
  return serializeElement(element);
}

// Live properties (RFC 4918 §15, RFC 4331 quota): which exist, which are protected, and their XML
// for one resource. Dead properties come from storage as ready-made XML and are not handled here.
import { RENDER_SLOT, type Entry, type RenderOp, type Space, type Stat } from '../../common/storage';
import type { LockRecord } from './lock-store';
import { activeLockXml, SUPPORTED_LOCK_XML } from './locks';
import { baseName, readablePath } from './paths';
import { DAV_NS, escapeXmlText } from './xml';
import { contentTypeFor } from '../../common/content-types';

const D = `{${DAV_NS}}`;

export const CREATIONDATE = D + 'creationdate';
export const DISPLAYNAME = D + 'displayname';
export const GETCONTENTLENGTH = D + 'getcontentlength';
export const GETCONTENTTYPE = D + 'getcontenttype';
export const GETETAG = D + 'getetag';
export const GETLASTMODIFIED = D + 'getlastmodified';
export const RESOURCETYPE = D + 'resourcetype';
export const LOCKDISCOVERY = D + 'lockdiscovery';
export const SUPPORTEDLOCK = D + 'supportedlock';
export const QUOTA_AVAILABLE = D + 'quota-available-bytes';
export const QUOTA_USED = D + 'quota-used-bytes';

/** Live properties allprop returns. RFC 4331 §3: the quota properties are left out of allprop. */
export const ALLPROP_LIVE: readonly string[] = [
  CREATIONDATE,
  DISPLAYNAME,
  GETCONTENTLENGTH,
  GETCONTENTTYPE,
  GETETAG,
  GETLASTMODIFIED,
  RESOURCETYPE,
  LOCKDISCOVERY,
  SUPPORTEDLOCK,
];

const LIVE = new Set<string>([...ALLPROP_LIVE, QUOTA_AVAILABLE, QUOTA_USED]);

export function isLiveProperty(name: string): boolean {
  return LIVE.has(name);
}

/** Every DAV: property is computed by the server; clients may not set or remove them. */
export function isProtectedProperty(name: string): boolean {
  return name.startsWith(D);
}

/** What rendering live properties needs beyond the entry itself. */
export interface LivePropertySources {
  nowMs: number;
  /** Locks covering the entry (only consulted for lockdiscovery). */
  locksFor: (entry: Entry) => LockRecord[];
  /** Quota of the listing's storage, fetched once per request; null when not requested. */
  space: Space | null;
}

/** The property element with its value, or null when the resource does not have it (404). */
export function livePropertyXml(name: string, entry: Entry, sources: LivePropertySources): string | null {
  const stat = entry.stat;
  const isCollection = stat.kind === 'directory';
  switch (name) {
    case CREATIONDATE:
      return creationdateXml(stat);
    case DISPLAYNAME:
      return displaynameXml(entry);
    case GETCONTENTLENGTH:
      return isCollection ? null : getcontentlengthXml(stat);
    case GETCONTENTTYPE:
      return isCollection ? null : getcontenttypeXml(entry);
    case GETETAG:
      return getetagXml(stat);
    case GETLASTMODIFIED:
      return getlastmodifiedXml(stat);
    case RESOURCETYPE:
      return resourcetypeXml(isCollection);
    case LOCKDISCOVERY:
      return lockdiscoveryXml(entry, sources);
    case SUPPORTEDLOCK:
      return SUPPORTEDLOCK_XML;
    case QUOTA_AVAILABLE:
      return sources.space === null
        ? null
        : `<D:quota-available-bytes>${Math.max(0, Math.floor(sources.space.availableBytes))}</D:quota-available-bytes>`;
    case QUOTA_USED:
      return sources.space === null
        ? null
        : `<D:quota-used-bytes>${Math.max(0, Math.floor(sources.space.usedBytes))}</D:quota-used-bytes>`;
    default:
      return null;
  }
}

/**
 * What livePropertyXml gives for each of ALLPROP_LIVE, in that order, in one piece: a listing
 * renders these for every member, and a loop over the names costs a third of the rendering.
 */
export function allpropLiveXml(entry: Entry, sources: LivePropertySources): string {
  const stat = entry.stat;
  const isCollection = stat.kind === 'directory';
  const content = isCollection ? '' : getcontentlengthXml(stat) + getcontenttypeXml(entry);
  return (
    creationdateXml(stat) +
    displaynameXml(entry) +
    content +
    getetagXml(stat) +
    getlastmodifiedXml(stat) +
    resourcetypeXml(isCollection) +
    lockdiscoveryXml(entry, sources) +
    SUPPORTEDLOCK_XML
  );
}

/**
 * What livePropertyXml gives for `name`, for a member of this kind with no locks, as a program the
 * worker runs for each member (common/storage.ts RENDER_SLOT puts the member's values in place);
 * null where livePropertyXml gives null. The same text: test/e2e/propfind-rendered.test.ts
 * compares the two renderings.
 */
export function livePropertyOps(
  name: string,
  isCollection: boolean,
  sources: Pick<LivePropertySources, 'space'>,
): RenderOp[] | null {
  switch (name) {
    case CREATIONDATE:
      return ['<D:creationdate>', RENDER_SLOT.created, '</D:creationdate>'];
    case DISPLAYNAME:
      return ['<D:displayname>', RENDER_SLOT.name, '</D:displayname>'];
    case GETCONTENTLENGTH:
      return isCollection ? null : ['<D:getcontentlength>', RENDER_SLOT.size, '</D:getcontentlength>'];
    case GETCONTENTTYPE:
      return isCollection ? null : ['<D:getcontenttype>', RENDER_SLOT.type, '</D:getcontenttype>'];
    case GETETAG:
      return ['<D:getetag>', RENDER_SLOT.etag, '</D:getetag>'];
    case GETLASTMODIFIED:
      return ['<D:getlastmodified>', RENDER_SLOT.modified, '</D:getlastmodified>'];
    case LOCKDISCOVERY:
      return [NO_LOCKS_XML];
    default: {
      // The rest do not vary by member: resourcetype, supportedlock, the quota properties.
      const xml = livePropertyXml(name, isCollection ? COLLECTION_PROBE : FILE_PROBE, {
        nowMs: 0,
        locksFor: () => [],
        space: sources.space,
      });
      return xml === null ? null : [xml];
    }
  }
}

/** allpropLiveXml as a program (livePropertyOps), in its order. */
export function allpropLiveOps(isCollection: boolean): RenderOp[] {
  const ops: RenderOp[] = [];
  for (const name of ALLPROP_LIVE) ops.push(...(livePropertyOps(name, isCollection, { space: null }) ?? []));
  return ops;
}

/** Members whose properties livePropertyOps renders without their values (only their kind counts). */
const FILE_PROBE: Entry = {
  path: '/',
  stat: { kind: 'file', size: 0, mtimeMs: 0, birthtimeMs: 0, etag: '""' },
};
const COLLECTION_PROBE: Entry = { path: '/', stat: { ...FILE_PROBE.stat, kind: 'directory' } };

const creationdateXml = (stat: Stat): string =>
  `<D:creationdate>${isoDate(stat.birthtimeMs)}</D:creationdate>`;
const displaynameXml = (entry: Entry): string =>
  `<D:displayname>${escapeXmlText(readablePath(baseName(entry.path)))}</D:displayname>`;
const getcontentlengthXml = (stat: Stat): string => `<D:getcontentlength>${stat.size}</D:getcontentlength>`;
const getcontenttypeXml = (entry: Entry): string =>
  `<D:getcontenttype>${contentTypeFor(entry.path)}</D:getcontenttype>`;
const getetagXml = (stat: Stat): string => `<D:getetag>${escapeXmlText(stat.etag)}</D:getetag>`;
const getlastmodifiedXml = (stat: Stat): string =>
  `<D:getlastmodified>${httpDate(stat.mtimeMs)}</D:getlastmodified>`;
const resourcetypeXml = (isCollection: boolean): string =>
  isCollection ? '<D:resourcetype><D:collection/></D:resourcetype>' : '<D:resourcetype/>';
const SUPPORTEDLOCK_XML = `<D:supportedlock>${SUPPORTED_LOCK_XML}</D:supportedlock>`;

const NO_LOCKS_XML = '<D:lockdiscovery></D:lockdiscovery>';

function lockdiscoveryXml(entry: Entry, sources: LivePropertySources): string {
  const locks = sources.locksFor(entry);
  if (locks.length === 0) return NO_LOCKS_XML;
  let xml = '<D:lockdiscovery>';
  for (const lock of locks) xml += activeLockXml(lock, sources.nowMs);
  return xml + '</D:lockdiscovery>';
}

/** RFC 3339 without fractional seconds, as DAV:creationdate wants. */
export function isoDate(ms: number): string {
  const second = Math.floor(ms / 1000);
  return cachedDate(isoDates, second, () => new Date(second * 1000).toISOString().slice(0, 19) + 'Z');
}

// A listing formats two dates per entry, and files of one directory share few distinct seconds:
// remembering the last few hundred saves most of the Date work of a large PROPFIND.
const isoDates = new Map<number, string>();
const httpDates = new Map<number, string>();
function cachedDate(cache: Map<number, string>, second: number, format: () => string): string {
  let text = cache.get(second);
  if (text === undefined) {
    if (cache.size >= 512) cache.clear();
    text = format();
    cache.set(second, text);
  }
  return text;
}

/** IMF-fixdate (RFC 9110 §5.6.7), for Last-Modified and DAV:getlastmodified. */
export function httpDate(ms: number): string {
  const second = Math.floor(ms / 1000);
  return cachedDate(httpDates, second, () => new Date(second * 1000).toUTCString());
}

/** Weak validator for Last-Modified comparisons: mtime truncated to whole seconds. */
export function lastModifiedSeconds(stat: Stat): number {
  return Math.floor(stat.mtimeMs / 1000);
}

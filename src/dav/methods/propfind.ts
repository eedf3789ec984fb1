// PROPFIND: allprop (with include), propname and prop at Depth 0, 1 or a bounded infinity. The
// listing comes from storage in batches and the multistatus goes out as entries arrive.
import {
  StorageError,
  type DavPath,
  type Depth,
  type Entry,
  type PropSelection,
  RENDER_SLOT,
  type RenderedResponses,
  type RenderOp,
  type RenderTemplate,
  type Space,
} from '../../../common/storage';
import { hideFitsRenderTemplate } from '../../../common/storage-protocol';
import { isRenderablePropertyName, renderableDeadProperty } from '../dead-property';
import { DavError, statusLine } from '../errors';
import { checkIfHeader, lockIndexFor } from '../locks';
import { MultistatusWriter } from '../multistatus';
import { isReservedPath, mayHideAmong } from '../hide';
import { encodeHref } from '../paths';
import {
  ALLPROP_LIVE,
  allpropLiveOps,
  allpropLiveXml,
  isLiveProperty,
  livePropertyOps,
  livePropertyXml,
  QUOTA_AVAILABLE,
  QUOTA_USED,
  type LivePropertySources,
} from '../props';
import { headerValue, type DavRequest } from '../request';
import {
  childElements,
  clarkName,
  emptyPropertyElement,
  escapeXml,
  isDavElement,
  parseXml,
  readBoundedBody,
} from '../xml';

type PropfindQuery =
  | { kind: 'allprop'; include: string[] }
  | { kind: 'propname' }
  | {
      kind: 'prop';
      names: string[];
      empty: string[];
      /** Positions of the live names among `names`: rendered for each entry. */
      live: number[];
      /**
       * The dead names' empty elements and the end of the 404 propstat and of the response, as
       * UTF-8; null when no dead property is named. Every entry without dead properties of its
       * own (nearly all, typically) ends with exactly these bytes.
       */
      deadMissing: Buffer | null;
    };

const LOCKDISCOVERY_NAME = '{DAV:}lockdiscovery';
const OK_LINE = `<D:status>${statusLine(200)}</D:status>`;
const NOT_FOUND_LINE = `<D:status>${statusLine(404)}</D:status>`;

export async function handlePropfind(request: DavRequest): Promise<void> {
  const { req, res, storage, target } = request;
  const depth = parsePropfindDepth(headerValue(req, 'depth'));
  const body = await readBoundedBody(req, request.limits.maxXmlBytes);
  const query: PropfindQuery = body.length === 0 ? { kind: 'allprop', include: [] } : parsePropfind(body);
  checkPropertyCount(query, request.limits.maxPropfindProperties);
  await checkIfHeader(request);

  const wanted = query.kind === 'prop' ? query.names : query.kind === 'allprop' ? query.include : [];
  let space: Space | null = null;
  if (wanted.includes(QUOTA_AVAILABLE) || wanted.includes(QUOTA_USED)) {
    // One statfs/quota call for the whole listing: members share the storage of the collection.
    space = await storage.space(target.path).catch(() => null);
  }
  const needsLocks = query.kind === 'allprop' || wanted.includes(LOCKDISCOVERY_NAME);
  const lockIndex = needsLocks ? await lockIndexFor(request, target.path, depth) : null;
  const sources: LivePropertySources = {
    nowMs: request.nowMs,
    locksFor: lockIndex === null ? noLocks : (entry) => lockIndex(entry.path),
    space,
  };

  const limit = depth === 'infinity' ? request.limits.maxInfinityEntries : Number.MAX_SAFE_INTEGER;
  const listOptions = { props: deadSelection(query), limit };
  // Members of a Depth 1 listing without locks are rendered by the worker where it can.
  const template =
    storage.listRendered !== undefined && depth === 1 && lockIndex === null && !isHidden(request, target.path)
      ? renderTemplate(request, query, target.path, sources)
      : null;
  const listing: AsyncIterable<Entry | RenderedResponses> =
    template !== null
      ? storage.listRendered!(target.path, listOptions, template)
      : storage.list(target.path, depth, listOptions);
  const multistatus = new MultistatusWriter(res);
  const dropped = { count: 0 };
  const hrefs = new HrefWriter();
  try {
    for await (const entry of listing) {
      if ('rendered' in entry) {
        await multistatus.addOwned(entry.rendered, entry.release);
        continue;
      }
      if (isHidden(request, entry.path)) continue;
      const backpressure = renderResponse(entry, query, sources, dropped, hrefs, multistatus);
      if (backpressure !== undefined) await backpressure;
    }
  } catch (error) {
    // Depth: infinity is streamed, so its bound may trip after the 207 went out. Until then it is
    // a clean 403; after, the reply ends with the request-URI's 507 and
    // DAV:number-of-matches-within-limits, the way RFC 6578 §3.7 marks a truncated multistatus.
    if (!(error instanceof StorageError && error.code === 'LIMIT')) throw error;
    if (!multistatus.isStarted) throw DavError.propfindFiniteDepth();
    await multistatus.addStatus(encodeHref(target.path, true), 507, 'number-of-matches-within-limits');
  }
  await multistatus.end();
  if (dropped.count > 0)
    request.log('debug', 'dead properties left out of a reply: not one element named as stored', {
      url: req.url,
      count: dropped.count,
    });
}

/**
 * Above this much literal text per member the web process renders the listing itself: copying a
 * block every member repeats (200 unknown properties' 404s) costs it less than receiving the
 * block per member from the worker.
 */
const MAX_RENDERED_LITERAL_BYTES = 4096;

/**
 * What the worker needs to render the members of `dirPath` as renderResponse does, for a member
 * without dead properties or locks (the worker leaves any member with dead properties to us, and
 * a listing with locks is not rendered there); null when the query or shares.hide is beyond what
 * a template carries (more patterns, or longer ones: the worker would refuse the request).
 */
function renderTemplate(
  request: DavRequest,
  query: PropfindQuery,
  dirPath: DavPath,
  sources: LivePropertySources,
): RenderTemplate | null {
  if (query.kind === 'propname' || (query.kind === 'allprop' && query.include.length > 0)) return null;
  const hide = mayHideAmong(dirPath, request.hide);
  if (!hideFitsRenderTemplate(hide)) return null;
  const hrefOpen = `<D:response><D:href>${dirPath === '/' ? '' : escapeXml(encodeHref(dirPath, false))}/`;
  const file = responseProgram(query, false, sources, hrefOpen);
  const directory = responseProgram(query, true, sources, hrefOpen);
  const literalBytes = (program: RenderOp[]): number =>
    program.reduce<number>((sum, op) => sum + (typeof op === 'string' ? Buffer.byteLength(op) : 0), 0);
  if (Math.max(literalBytes(file), literalBytes(directory)) > MAX_RENDERED_LITERAL_BYTES) return null;
  return { file, directory, hide };
}

/** renderResponse's text for a member of this kind without dead properties or locks, as a program. */
function responseProgram(
  query: Exclude<PropfindQuery, { kind: 'propname' }>,
  isCollection: boolean,
  sources: LivePropertySources,
  hrefOpen: string,
): RenderOp[] {
  const head: RenderOp[] = [hrefOpen, RENDER_SLOT.href, `${isCollection ? '/' : ''}</D:href>`];
  const found: RenderOp[] = [];
  let missing = '';
  if (query.kind === 'allprop') found.push(...allpropLiveOps(isCollection));
  else {
    for (const index of query.deadMissing === null ? query.names.keys() : query.live) {
      const ops = livePropertyOps(query.names[index]!, isCollection, sources);
      if (ops === null) missing += query.empty[index];
      else found.push(...ops);
    }
  }
  const ok: RenderOp[] = [`<D:propstat><D:prop>`, ...found, `</D:prop>${OK_LINE}</D:propstat>`];
  if (query.kind === 'prop' && query.deadMissing !== null) {
    // As renderResponse's shared 404 block: the missing live names, then every dead one.
    return [
      ...head,
      ...(found.length === 0 ? [] : ok),
      `<D:propstat><D:prop>${missing}`,
      query.deadMissing.toString('utf8'),
    ];
  }
  const program = [...head];
  if (found.length > 0 || missing === '') program.push(...ok);
  if (missing !== '') program.push(`<D:propstat><D:prop>${missing}</D:prop>${NOT_FOUND_LINE}</D:propstat>`);
  program.push('</D:response>');
  return program;
}

/** Bounds the work one small body can ask for: every name is rendered for every member. */
function checkPropertyCount(query: PropfindQuery, max: number): void {
  const count =
    query.kind === 'prop' ? query.names.length : query.kind === 'allprop' ? query.include.length : 0;
  if (count > max)
    throw new DavError(403, `a PROPFIND may name at most ${max} properties; this one names ${count}`);
}

/** Names shares.hide hides or privdav reserves (hide.ts) never appear in a listing. */
function isHidden(request: DavRequest, path: string): boolean {
  return isReservedPath(path) || request.hide.hidesPath(path);
}

function noLocks(): [] {
  return [];
}

function parsePropfindDepth(header: string | undefined): Depth {
  if (header === undefined) return 'infinity';
  const value = header.trim().toLowerCase();
  if (value === '0') return 0;
  if (value === '1') return 1;
  if (value === 'infinity') return 'infinity';
  throw new DavError(400, 'Depth must be 0, 1 or infinity');
}

function parsePropfind(body: Buffer): PropfindQuery {
  const root = parseXml(body);
  if (!isDavElement(root, 'propfind')) throw new DavError(400, 'expected a DAV:propfind body');
  let query: PropfindQuery | null = null;
  const include: string[] = [];
  for (const child of childElements(root)) {
    if (isDavElement(child, 'allprop')) query = { kind: 'allprop', include };
    else if (isDavElement(child, 'propname')) query = { kind: 'propname' };
    else if (isDavElement(child, 'prop')) {
      const names = childElements(child).map(clarkName);
      // Each name's empty element, made once: a listing renders the missing ones for every member.
      const empty = names.map(emptyPropertyElement);
      const live: number[] = [];
      let dead = '';
      names.forEach((name, index) => {
        if (isLiveProperty(name)) live.push(index);
        else dead += empty[index];
      });
      const deadMissing =
        dead === '' ? null : Buffer.from(`${dead}</D:prop>${NOT_FOUND_LINE}</D:propstat></D:response>`);
      query = { kind: 'prop', names, empty, live, deadMissing };
    } else if (isDavElement(child, 'include')) include.push(...childElements(child).map(clarkName));
  }
  return query ?? { kind: 'allprop', include };
}

function deadSelection(query: PropfindQuery): PropSelection {
  if (query.kind === 'allprop') return 'all';
  if (query.kind === 'propname') return 'names';
  const dead = query.names.filter((name) => !isLiveProperty(name));
  return dead.length === 0 ? 'none' : dead;
}

/** Counts dead properties left out because their stored name or value could not be rendered. */
interface Dropped {
  count: number;
}

/** Renders one entry's response into the multistatus; a promise when the writer asks to wait. */
function renderResponse(
  entry: Entry,
  query: PropfindQuery,
  sources: LivePropertySources,
  dropped: Dropped,
  hrefs: HrefWriter,
  out: MultistatusWriter,
): Promise<void> | undefined {
  const isCollection = entry.stat.kind === 'directory';
  const head = `<D:response><D:href>${hrefs.xml(entry.path, isCollection)}</D:href>`;
  let found = '';
  let missing = '';
  if (query.kind === 'propname') {
    for (const name of ALLPROP_LIVE) {
      if (livePropertyXml(name, entry, sources) !== null) found += emptyPropertyElement(name);
    }
    for (const name in entry.props) {
      if (isRenderablePropertyName(name)) found += emptyPropertyElement(name);
      else dropped.count++;
    }
  } else if (query.kind === 'allprop') {
    found += allpropLiveXml(entry, sources);
    let rendered: Set<string> | null = null;
    for (const name in entry.props) {
      const xml = renderableDeadProperty(name, entry.props[name]);
      if (xml === null) dropped.count++;
      else {
        found += xml;
        (rendered ??= new Set<string>()).add(name);
      }
    }
    for (const name of query.include) {
      if (ALLPROP_LIVE.includes(name) || rendered?.has(name) === true) continue;
      const xml = isLiveProperty(name) ? livePropertyXml(name, entry, sources) : null;
      if (xml === null) missing += emptyPropertyElement(name);
      else found += xml;
    }
  } else if (query.deadMissing !== null && !hasProperties(entry.props)) {
    // No dead property of its own: every dead name goes into the 404 block such entries share
    // (after the missing live ones: the order of properties in a propstat carries no meaning).
    for (const index of query.live) {
      const xml = livePropertyXml(query.names[index]!, entry, sources);
      if (xml === null) missing += query.empty[index];
      else found += xml;
    }
    const ok = found === '' ? '' : `<D:propstat><D:prop>${found}</D:prop>${OK_LINE}</D:propstat>`;
    return out.add(`${head}${ok}<D:propstat><D:prop>${missing}`, query.deadMissing);
  } else {
    query.names.forEach((name, index) => {
      const xml = isLiveProperty(name)
        ? livePropertyXml(name, entry, sources)
        : deadPropertyXml(entry, name, dropped);
      if (xml === null) missing += query.empty[index];
      else found += xml;
    });
  }
  let xml = head;
  if (found !== '' || missing === '') xml += `<D:propstat><D:prop>${found}</D:prop>${OK_LINE}</D:propstat>`;
  if (missing !== '') xml += `<D:propstat><D:prop>${missing}</D:prop>${NOT_FOUND_LINE}</D:propstat>`;
  return out.add(xml + '</D:response>');
}

/**
 * Hrefs as XML text. A listing's entries come collection by collection: the parent's part is
 * encoded once per run of its members (a Depth 1 listing: once), only the last segment each time.
 * The same text as escapeXml(encodeHref(path)): both encode and escape segment by segment.
 */
class HrefWriter {
  #parent: string | null = null;
  #parentXml = '';

  xml(path: DavPath, isCollection: boolean): string {
    if (path === '/') return '/';
    const slash = path.lastIndexOf('/');
    const parent = path.slice(0, slash);
    if (parent !== this.#parent) {
      this.#parent = parent;
      this.#parentXml = parent === '' ? '' : escapeXml(encodeHref(parent, false));
    }
    return this.#parentXml + escapeXml(encodeHref(path.slice(slash), isCollection));
  }
}

function hasProperties(props: Entry['props']): boolean {
  for (const name in props) if (Object.hasOwn(props, name)) return true;
  return false;
}

function deadPropertyXml(entry: Entry, name: string, dropped: Dropped): string | null {
  const stored = entry.props?.[name];
  if (stored === undefined) return null;
  const xml = renderableDeadProperty(name, stored);
  if (xml === null) dropped.count++;
  return xml;
}

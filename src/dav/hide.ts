// shares.hide: names matching an admin's glob patterns (like Samba's "veto files") are left out of
// listings and cannot be created. A convenience for clients' litter (.DS_Store, ._*), not a
// security boundary: the user's own shell still sees the files.
import { TRANSFER_TEMPORARY_NAME } from '../../common/names';
import type { DavPath } from '../../common/storage';

export class HideList {
  /** Each pattern as its code points. */
  readonly #patterns: string[][];

  /**
   * Patterns use `*` (any run of characters, also none) and `?` (one character); case-sensitive.
   * Patterns and names compare in NFC: the storage answers a name under either normalisation, so
   * a pattern matching only one spelling would leave the file reachable under the other.
   */
  constructor(patterns: readonly string[]) {
    this.patterns = patterns.map((pattern) => pattern.normalize('NFC'));
    this.#patterns = this.patterns.map((pattern) => Array.from(pattern));
  }

  /** The patterns, in NFC. */
  readonly patterns: readonly string[];

  get isEmpty(): boolean {
    return this.#patterns.length === 0;
  }

  /** True when the last segment of `path` matches a pattern. */
  hidesName(name: string): boolean {
    if (this.#patterns.length === 0) return false;
    const composed = NON_ASCII.test(name) ? name.normalize('NFC') : name;
    // By code points; a name without surrogates is its own code points, indexed as it is.
    const characters = SURROGATE.test(composed) ? Array.from(composed) : composed;
    for (const pattern of this.#patterns) if (globMatches(pattern, characters)) return true;
    return false;
  }

  /** True when any segment of `path` matches: a hidden directory hides what is inside it. */
  hidesPath(path: DavPath): boolean {
    if (this.#patterns.length === 0 || path === '/') return false;
    for (const segment of path.slice(1).split('/')) if (this.hidesName(segment)) return true;
    return false;
  }
}

const NON_ASCII = /[^\x00-\x7f]/;
const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * `*` any run of characters (also none), `?` one, anything else itself; over code points. In time
 * name × pattern at worst (one `*` remembered, as native/src/listing_xml.c does): a regular
 * expression of the glob backtracked polynomially in the number of stars, and a user's long name
 * against a pattern such as "*a*a*a*a*a*b" held the shared web process for minutes.
 */
function globMatches(pattern: readonly string[], name: string | readonly string[]): boolean {
  let p = 0;
  let n = 0;
  let star = -1;
  let resume = 0;
  while (n < name.length) {
    if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      resume = n;
    } else if (p < pattern.length && (pattern[p] === '?' || pattern[p] === name[n])) {
      p++;
      n++;
    } else if (star !== -1) {
      p = star + 1;
      n = ++resume;
    } else return false;
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

/**
 * What Finder probes at the root of every mount (CLIENTS.md). They are answered 404 here, without
 * a round trip to the user's worker, so these names at a share's root are reserved: privdav never
 * shows them and refuses to create them, whatever the disk holds.
 */
const FINDER_PROBES = new Set(['.Spotlight-V100', '._.', 'mach_kernel', 'Backups.backupdb']);
const SHARE_ROOT_NAME = /^(?:\/~[^/]+)?\/([^/]+)$/;

/**
 * Patterns for names that may be hidden among the members of `dirPath` (shares.hide's, and the
 * Finder probes at a share's root): the worker leaves such members to the web process to judge
 * when it renders a listing (common/storage.ts RenderTemplate). The temporaries' names it knows.
 */
export function mayHideAmong(dirPath: DavPath, hide: HideList): string[] {
  const atRoot = isFinderProbe(`${dirPath === '/' ? '' : dirPath}/mach_kernel`);
  return atRoot ? [...hide.patterns, ...FINDER_PROBES] : [...hide.patterns];
}

export function isFinderProbe(path: string): boolean {
  const match = SHARE_ROOT_NAME.exec(path);
  return match !== null && FINDER_PROBES.has(match[1]!);
}

/**
 * Names privdav itself reserves: the Finder probes, and the worker's temporaries while it replaces
 * a collection (common/names.ts), in any segment — they are never listed, read or created.
 */
export function isReservedPath(path: string): boolean {
  if (isFinderProbe(path)) return true;
  if (!path.includes('/.privdav-')) return false;
  return path.split('/').some((segment) => TRANSFER_TEMPORARY_NAME.test(segment));
}

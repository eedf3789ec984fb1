// The If: request header of RFC 4918 §10.4, alone: its grammar, the tokens it submits, and its
// truth against the state of the resources it names. Nothing here touches storage or locks.
import { DavError } from './errors';

export interface IfCondition {
  negated: boolean;
  kind: 'token' | 'etag';
  /** A state token (Coded-URL without the angle brackets), or an entity tag as written (`W/"x"`). */
  value: string;
}

export interface IfList {
  /** The Resource-Tag (URL or absolute path as written) of a tagged list, null for an untagged one. */
  resourceTag: string | null;
  conditions: IfCondition[];
}

export interface IfHeader {
  tagged: boolean;
  lists: IfList[];
}

/** What the server knows about one resource when evaluating conditions. */
export interface IfResourceState {
  /** Current entity tag, or null when the resource does not exist. */
  etag: string | null;
  /** Tokens of the locks that cover the resource. */
  lockTokens: ReadonlySet<string>;
}

function syntaxError(reason: string): DavError {
  return new DavError(400, `malformed If header: ${reason}`);
}

/**
 * If = "If" ":" ( 1*No-tag-list | 1*Tagged-list )
 * Tagged-list = Resource-Tag 1*List;  List = "(" 1*Condition ")"
 * Condition = ["Not"] (State-token | "[" entity-tag "]")
 */
export function parseIfHeader(text: string): IfHeader {
  const lists: IfList[] = [];
  let tagged: boolean | null = null;
  let currentTag: string | null = null;
  let listsForCurrentTag = 0;
  let i = 0;
  const n = text.length;

  const skipSpace = (): void => {
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\r' || text[i] === '\n')) i++;
  };
  const readAngle = (): string => {
    const close = text.indexOf('>', i + 1);
    if (close === -1) throw syntaxError('unterminated <');
    const value = text.slice(i + 1, close);
    if (value === '' || /[\s<]/.test(value)) throw syntaxError('invalid URL in <>');
    i = close + 1;
    return value;
  };

  skipSpace();
  if (i === n) throw syntaxError('empty');
  while (i < n) {
    const c = text[i];
    if (c === '<') {
      if (tagged === false) throw syntaxError('tagged and untagged lists mixed');
      if (tagged === true && listsForCurrentTag === 0) throw syntaxError('resource tag without a list');
      tagged = true;
      currentTag = readAngle();
      listsForCurrentTag = 0;
    } else if (c === '(') {
      if (tagged === null) tagged = false;
      i++;
      lists.push({ resourceTag: tagged ? currentTag : null, conditions: readConditions() });
      listsForCurrentTag++;
    } else {
      throw syntaxError(`unexpected "${c}"`);
    }
    skipSpace();
  }
  if (tagged === true && listsForCurrentTag === 0) throw syntaxError('resource tag without a list');
  return { tagged: tagged === true, lists };

  function readConditions(): IfCondition[] {
    const conditions: IfCondition[] = [];
    for (;;) {
      skipSpace();
      if (i >= n) throw syntaxError('unterminated list');
      if (text[i] === ')') {
        i++;
        if (conditions.length === 0) throw syntaxError('empty list');
        return conditions;
      }
      let negated = false;
      if (text.startsWith('Not', i)) {
        negated = true;
        i += 3;
        skipSpace();
      }
      if (text[i] === '<') {
        conditions.push({ negated, kind: 'token', value: readAngle() });
      } else if (text[i] === '[') {
        i++;
        conditions.push({ negated, kind: 'etag', value: readEntityTag() });
        skipSpace();
        if (text[i] !== ']') throw syntaxError('expected ]');
        i++;
      } else {
        throw syntaxError('expected a state token or [entity-tag]');
      }
    }
  }

  function readEntityTag(): string {
    skipSpace();
    const start = i;
    if (text.startsWith('W/', i)) i += 2;
    if (text[i] !== '"') throw syntaxError('entity tag must be quoted');
    i++;
    while (i < n && text[i] !== '"') {
      if (text[i] === '\\') i++;
      i++;
    }
    if (i >= n) throw syntaxError('unterminated entity tag');
    i++;
    return text.slice(start, i);
  }
}

/** State tokens the client submitted (not negated): the lock tokens it claims to hold. */
export function submittedTokens(header: IfHeader): string[] {
  const tokens: string[] = [];
  for (const list of header.lists) {
    for (const condition of list.conditions) {
      if (condition.kind === 'token' && !condition.negated && !tokens.includes(condition.value)) {
        tokens.push(condition.value);
      }
    }
  }
  return tokens;
}

/** Compares entity tags weakly (RFC 9110 §8.8.3.2), as If: conditions are about state, not bytes. */
export function etagsMatchWeakly(a: string, b: string): boolean {
  return stripWeak(a) === stripWeak(b);
}

function stripWeak(etag: string): string {
  return etag.startsWith('W/') ? etag.slice(2) : etag;
}

/**
 * The header is true when at least one list is true; a list is true when all its conditions
 * are. `stateOf` gives the state of the resource a list applies to (its tag, or the request
 * URI for untagged lists); null means the tag names something that is not on this server, which
 * makes the list false.
 */
export function evaluateIfHeader(
  header: IfHeader,
  stateOf: (list: IfList) => IfResourceState | null,
): boolean {
  for (const list of header.lists) {
    const state = stateOf(list);
    if (state !== null && listHolds(list, state)) return true;
  }
  return false;
}

function listHolds(list: IfList, state: IfResourceState): boolean {
  for (const condition of list.conditions) {
    let matches: boolean;
    if (condition.kind === 'etag') {
      matches = state.etag !== null && etagsMatchWeakly(condition.value, state.etag);
    } else {
      // DAV:no-lock and any unknown URI never match: "Not <DAV:no-lock>" is the idiom for true.
      matches = state.lockTokens.has(condition.value);
    }
    if (matches === condition.negated) return false;
  }
  return true;
}

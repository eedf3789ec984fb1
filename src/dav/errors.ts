// Protocol errors and the one mapping from StorageError codes to HTTP statuses. Methods throw
// DavError or StorageError; the handler turns either into a complete response here.
import { StorageError, type StorageErrorCode } from '../../common/storage';
import { LockStoreUnavailableError } from './lock-store';
import { escapeXml } from './xml';

/**
 * The DAV: preconditions and postconditions privdav reports (RFC 4918 §16), each the element it
 * puts in a <D:error> body and the hrefs that element carries. A condition comes only from the
 * factory of the situation it names (as SabreDAV's exception classes own theirs), never from a
 * status alone: a LIMIT from an upload cannot turn into propfind-finite-depth.
 */
export type DavCondition =
  | { element: 'propfind-finite-depth' }
  | { element: 'lock-token-submitted'; hrefs: readonly string[] }
  | { element: 'no-conflicting-lock'; hrefs: readonly string[] }
  | { element: 'lock-token-matches-request-uri' };

export class DavError extends Error {
  readonly status: number;
  /** Sent as the <D:error> body instead of the message (see DavCondition). */
  readonly condition?: DavCondition;
  /** Seconds for a Retry-After header (503). */
  readonly retryAfterS?: number;

  constructor(
    status: number,
    message: string,
    extra: { condition?: DavCondition; retryAfterS?: number } = {},
  ) {
    super(message);
    this.name = 'DavError';
    this.status = status;
    this.condition = extra.condition;
    this.retryAfterS = extra.retryAfterS;
  }

  /** 403: a Depth: infinity PROPFIND would list more than limits.max_infinity_entries. */
  static propfindFiniteDepth(): DavError {
    return new DavError(403, 'too many resources for one request', {
      condition: { element: 'propfind-finite-depth' },
    });
  }

  /** 423: the resources in `hrefs` are locked and the request did not submit their tokens. */
  static lockTokenSubmitted(hrefs: readonly string[]): DavError {
    return new DavError(423, 'locked: submit the lock token', {
      condition: { element: 'lock-token-submitted', hrefs },
    });
  }

  /** 423: a LOCK conflicts with the locks rooted at `hrefs`. */
  static noConflictingLock(hrefs: readonly string[]): DavError {
    return new DavError(423, 'a conflicting lock exists', {
      condition: { element: 'no-conflicting-lock', hrefs },
    });
  }

  /** 409: an UNLOCK names a token that does not apply to the request URI. */
  static lockTokenMatchesRequestUri(): DavError {
    return new DavError(409, 'the lock token does not apply to this resource', {
      condition: { element: 'lock-token-matches-request-uri' },
    });
  }

  /** 503 with Retry-After: something the request needs is away for now. */
  static unavailable(message: string, retryAfterS = 5): DavError {
    return new DavError(503, message, { retryAfterS });
  }
}

/** The <D:error> body of a condition. */
export function conditionXml(condition: DavCondition): string {
  const hrefs =
    'hrefs' in condition ? condition.hrefs.map((href) => `<D:href>${escapeXml(href)}</D:href>`).join('') : '';
  const element =
    hrefs === '' ? `<D:${condition.element}/>` : `<D:${condition.element}>${hrefs}</D:${condition.element}>`;
  return `<D:error xmlns:D="DAV:">${element}</D:error>`;
}

interface StatusAndReason {
  status: number;
  reason: string;
}

const STORAGE_STATUS: Record<StorageErrorCode, StatusAndReason> = {
  ENOENT: { status: 404, reason: 'not found' },
  EACCES: { status: 403, reason: 'permission denied' },
  EPERM: { status: 403, reason: 'operation not permitted' },
  EEXIST: { status: 405, reason: 'already exists' },
  ENOTDIR: { status: 409, reason: 'a path component is not a collection' },
  EISDIR: { status: 405, reason: 'is a collection' },
  ENOTEMPTY: { status: 409, reason: 'collection not empty' },
  ENOSPC: { status: 507, reason: 'no space left on the storage' },
  EDQUOT: { status: 507, reason: 'quota exceeded' },
  EFBIG: { status: 413, reason: 'file too large for the storage' },
  ENAMETOOLONG: { status: 414, reason: 'name too long' },
  ELOOP: { status: 403, reason: 'too many symbolic links' },
  EROFS: { status: 403, reason: 'read-only storage' },
  EBUSY: { status: 409, reason: 'resource busy' },
  EXDEV: { status: 502, reason: 'cannot move across storages' },
  EMLINK: { status: 507, reason: 'too many links' },
  ENOTSUP: { status: 403, reason: 'not supported by the storage' },
  // RFC 4918 §9.2.1: 507 when the server cannot record a property value
  E2BIG: { status: 507, reason: 'property too large' },
  ERANGE: { status: 507, reason: 'property too large' },
  EIO: { status: 500, reason: 'input/output error' },
  BAD_PATH: { status: 400, reason: 'invalid path' },
  NOT_A_SHARE: { status: 404, reason: 'no such share' },
  LIMIT: { status: 403, reason: 'too many resources for one request' },
  COOKIE_INVALID: { status: 503, reason: 'storage refused the credentials' },
  COOKIE_EXPIRED: { status: 503, reason: 'credentials expired' },
  UNAVAILABLE: { status: 503, reason: 'storage unavailable' },
  PROTOCOL: { status: 500, reason: 'internal protocol error' },
  INTERNAL: { status: 500, reason: 'internal error' },
};

export function storageStatus(code: StorageErrorCode): StatusAndReason {
  return STORAGE_STATUS[code] ?? STORAGE_STATUS.INTERNAL;
}

/** Any thrown value as a DavError; unexpected ones become 500 (the caller logs them). */
export function toDavError(error: unknown): DavError {
  if (error instanceof DavError) return error;
  // Fail closed: no lock decision without the lock database. The cause (an address, a database
  // error) goes to the log (the handler logs the thrown error), not to the client.
  if (error instanceof LockStoreUnavailableError)
    return DavError.unavailable('lock database unavailable; try again shortly');
  if (error instanceof StorageError) {
    const { status, reason } = storageStatus(error.code);
    // No condition here: which precondition a LIMIT breaks is for the method to say (PROPFIND).
    return status === 503 ? DavError.unavailable(reason) : new DavError(status, reason);
  }
  return new DavError(500, 'internal error');
}

/**
 * The client closed its connection while its response was being written: nobody is left to answer,
 * and nothing failed on our side.
 */
export class ClientGoneError extends Error {
  constructor() {
    super('client closed the connection mid-response');
    this.name = 'ClientGoneError';
  }
}

/** True for errors the server should log as its own failure rather than the client's. */
export function isServerFault(error: unknown): boolean {
  if (error instanceof DavError) return error.status >= 500;
  if (error instanceof StorageError) return storageStatus(error.code).status >= 500;
  return true;
}

/** The status line text of a code, for multistatus <D:status> elements. */
export function statusLine(status: number): string {
  return `HTTP/1.1 ${status} ${REASON_PHRASES[status] ?? 'Unknown'}`;
}

const REASON_PHRASES: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  423: 'Locked',
  424: 'Failed Dependency',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  507: 'Insufficient Storage',
};

// Protocol errors and the one mapping from StorageError codes to HTTP statuses. Methods throw
// DavError or StorageError; the handler turns either into a complete response here.
import { StorageError, type StorageErrorCode } from '../../common/storage';
import { LockStoreUnavailableError } from './lock-store';

export class DavError extends Error {
  readonly status: number;
  /** A DAV: precondition/postcondition element name (RFC 4918 §16), sent in a <D:error> body. */
  readonly condition?: string;
  /** hrefs inside the condition element (lock-token-submitted lists the locked resources). */
  readonly conditionHrefs?: string[];
  /** Seconds for a Retry-After header (503). */
  readonly retryAfterS?: number;

  constructor(
    status: number,
    message: string,
    condition?: string,
    conditionHrefs?: string[],
    retryAfterS?: number,
  ) {
    super(message);
    this.name = 'DavError';
    this.status = status;
    this.condition = condition;
    this.conditionHrefs = conditionHrefs;
    this.retryAfterS = retryAfterS;
  }
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
    return new DavError(503, 'lock database unavailable; try again shortly', undefined, undefined, 5);
  if (error instanceof StorageError) {
    const { status, reason } = storageStatus(error.code);
    if (error.code === 'LIMIT') return new DavError(status, reason, 'propfind-finite-depth');
    return new DavError(status, reason, undefined, undefined, status === 503 ? 5 : undefined);
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

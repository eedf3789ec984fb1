// PROPPATCH: every set/remove in document order, all or nothing (424 for the rest when one
// fails). Protected live properties are refused; Windows' Win32 times become the file's times.
import { StorageError, type PropPatchOp, type Times } from '../../../common/storage';
import { checkPreconditions } from '../conditional';
import { DavError, statusLine, storageStatus } from '../errors';
import { authorizeWrite } from '../locks';
import { MultistatusWriter } from '../multistatus';
import { encodeHref } from '../paths';
import { isProtectedProperty } from '../props';
import { statOf, type DavRequest } from '../request';
import {
  childElements,
  clarkName,
  emptyPropertyElement,
  escapeXml,
  isDavElement,
  parseXml,
  readBoundedBody,
  serializeElement,
  textContent,
  type XmlElement,
} from '../xml';

const MICROSOFT_NS = '{urn:schemas-microsoft-com:}';
const WIN32_MTIME = MICROSOFT_NS + 'Win32LastModifiedTime';
const WIN32_ATIME = MICROSOFT_NS + 'Win32LastAccessTime';

interface PlannedOp {
  op: PropPatchOp;
  /** The text value, for the Win32 time properties. */
  text: string;
  status: number;
  condition?: string;
}

export async function handleProppatch(request: DavRequest): Promise<void> {
  const { req, target } = request;
  const body = await readBoundedBody(req, request.limits.maxXmlBytes);
  if (body.length === 0) throw new DavError(400, 'PROPPATCH needs a DAV:propertyupdate body');
  const planned = parsePropertyUpdate(parseXml(body));
  const stat = await statOf(request, target.path);
  if (stat === null) throw new DavError(404, 'not found');
  checkPreconditions(req, stat, false);
  await authorizeWrite(request, [{ path: target.path, membership: false, tree: false }]);

  for (const item of planned) {
    if (isProtectedProperty(item.op.name)) {
      item.status = 403;
      item.condition = 'cannot-modify-protected-property';
    } else if (item.op.op === 'set' && isWin32Time(item.op.name) && Number.isNaN(Date.parse(item.text))) {
      item.status = 409; // not a date we could apply
    }
  }
  if (!planned.some((item) => item.status !== 200)) await applyAll(request, planned);
  else for (const item of planned) if (item.status === 200) item.status = 424;

  const multistatus = new MultistatusWriter(request.res);
  await multistatus.add(renderResponse(encodeHref(target.path, stat.kind === 'directory'), planned));
  await multistatus.end();
}

function parsePropertyUpdate(root: XmlElement): PlannedOp[] {
  if (!isDavElement(root, 'propertyupdate')) throw new DavError(400, 'expected a DAV:propertyupdate body');
  const planned: PlannedOp[] = [];
  for (const instruction of childElements(root)) {
    const isSet = isDavElement(instruction, 'set');
    if (!isSet && !isDavElement(instruction, 'remove')) continue;
    for (const prop of childElements(instruction)) {
      if (!isDavElement(prop, 'prop')) continue;
      for (const property of childElements(prop)) {
        const name = clarkName(property);
        const op: PropPatchOp = isSet
          ? { op: 'set', name, value: serializeElement(property) }
          : { op: 'remove', name };
        planned.push({ op, text: isSet ? textContent(property) : '', status: 200 });
      }
    }
  }
  if (planned.length === 0) throw new DavError(400, 'propertyupdate names no property');
  return planned;
}

function isWin32Time(name: string): boolean {
  return name === WIN32_MTIME || name === WIN32_ATIME;
}

function isWin32(name: string): boolean {
  return name.startsWith(MICROSOFT_NS + 'Win32');
}

async function applyAll(request: DavRequest, planned: PlannedOp[]): Promise<void> {
  const path = request.target.path;
  const deadOps = planned.filter((item) => !isWin32Time(item.op.name));
  if (deadOps.length > 0) {
    try {
      await request.storage.patchProps(
        path,
        deadOps.map((item) => item.op),
      );
    } catch (error) {
      const storageError = StorageError.from(error);
      // Windows sets Win32 attributes on every file it writes; where the filesystem has no user
      // xattrs, refusing them would fail its copies, so they are accepted and dropped.
      const onlyWin32 = deadOps.every((item) => isWin32(item.op.name));
      if (!(storageError.code === 'ENOTSUP' && onlyWin32)) {
        failAll(planned, deadOps, storageError);
        return;
      }
    }
  }
  const times: Times = {};
  for (const item of planned) {
    if (item.op.op !== 'set') continue;
    if (item.op.name === WIN32_MTIME) times.mtimeMs = Date.parse(item.text);
    if (item.op.name === WIN32_ATIME) times.atimeMs = Date.parse(item.text);
  }
  if (times.mtimeMs !== undefined || times.atimeMs !== undefined) {
    try {
      await request.storage.setTimes(path, times);
    } catch (error) {
      const status = storageStatus(StorageError.from(error).code).status;
      for (const item of planned) if (isWin32Time(item.op.name)) item.status = status;
    }
  }
}

/** The failing property gets the storage's status; the others did not happen (424). */
function failAll(planned: PlannedOp[], attempted: PlannedOp[], error: StorageError): void {
  const status = storageStatus(error.code).status;
  for (const item of planned) item.status = 424;
  const culprit = attempted.find((item) => item.op.name === error.property);
  if (culprit !== undefined) culprit.status = status;
  else for (const item of attempted) item.status = status;
}

function renderResponse(href: string, planned: PlannedOp[]): string {
  const byStatus = new Map<number, PlannedOp[]>();
  for (const item of planned) {
    const group = byStatus.get(item.status);
    if (group === undefined) byStatus.set(item.status, [item]);
    else group.push(item);
  }
  let xml = `<D:response><D:href>${escapeXml(href)}</D:href>`;
  for (const [status, items] of byStatus) {
    xml += '<D:propstat><D:prop>';
    const seen = new Set<string>();
    for (const item of items) {
      if (seen.has(item.op.name)) continue;
      seen.add(item.op.name);
      xml += emptyPropertyElement(item.op.name);
    }
    xml += `</D:prop><D:status>${statusLine(status)}</D:status>`;
    const condition = items.find((item) => item.condition !== undefined)?.condition;
    if (condition !== undefined) xml += `<D:error><D:${condition}/></D:error>`;
    xml += '</D:propstat>';
  }
  return xml + '</D:response>';
}

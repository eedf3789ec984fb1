// LocalUpload: an upload in progress as a temporary file beside its target (O_TMPFILE where the
// filesystem has it), fdatasync'd and renamed into place by commit(); the target is untouched until then.

import * as fs from 'node:fs';
import { basename, dirname } from 'node:path';
import { StorageError, type Stat, type Upload } from '../common/storage';
import { commitUpload } from '../native/index';
import { copyUserXattrs } from './dead-props';
import { closeQuietly, errnoOf, guard, storageError } from './errno';
import { fstat, refuseNonFile, toStat } from './file-stat';
import { osPath } from './layout';
import { randomNamePart } from './random-names';

/** open(2) flags O_TMPFILE | O_DIRECTORY; Node does not export the constant. */
const O_TMPFILE = 0o20200000;
/** open(2) flag O_PATH (Linux): a handle for fstat and /proc/self/fd, no read permission needed, nothing opened for I/O. */
const O_PATH = 0o10000000;
const { O_NOFOLLOW } = fs.constants;

/**
 * An upload in progress: a temporary file in the target's directory. LocalStorage owns `fd`; the
 * caller only writes into it (or into its own duplicate) and never closes it — commit() and abort()
 * close it. Until commit() renames it into place, the target is untouched.
 */
export class LocalUpload implements Upload {
  readonly fd: number;
  readonly existing: Stat | null;
  readonly #target: string;
  readonly #durable: boolean;
  /** The temporary name: created at open (named fallback) or at commit (O_TMPFILE). */
  #temporaryPath: string | null;
  #finished = false;

  private constructor(
    fd: number,
    target: string,
    existing: Stat | null,
    durable: boolean,
    temporary: string | null,
  ) {
    this.fd = fd;
    this.existing = existing;
    this.#target = target;
    this.#durable = durable;
    this.#temporaryPath = temporary;
  }

  static async open(target: string, existing: Stat | null, durable: boolean): Promise<LocalUpload> {
    const directory = dirname(target);
    try {
      // Anonymous until commit: a killed worker leaves nothing behind. Mode 0666 & ~umask.
      const fd = fs.openSync(osPath(directory), fs.constants.O_WRONLY | O_TMPFILE, 0o666);
      return new LocalUpload(fd, target, existing, durable, null);
    } catch (error) {
      // Filesystems without O_TMPFILE (and kernels that ignore the flag) fall back to a named file.
      const code = errnoOf(error);
      if (code !== 'EOPNOTSUPP' && code !== 'ENOTSUP' && code !== 'EISDIR' && code !== 'EINVAL') {
        throw storageError(error);
      }
    }
    const temporary = temporaryNameFor(target);
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL;
    const fd = await guard(call<number>((done) => fs.open(osPath(temporary), flags, 0o666, done)));
    return new LocalUpload(fd, target, existing, durable, temporary);
  }

  async commit(size?: number): Promise<Stat> {
    this.#finish();
    try {
      // Belt and braces before the rename makes it visible: the file holds exactly what was sent.
      const uploaded = await fstat(this.fd);
      if (size !== undefined && Number(uploaded.size) !== size)
        throw new StorageError('EIO', `upload is ${uploaded.size} bytes, ${size} were sent`);
      await this.#inheritFromTarget(uploaded);
      // fdatasync, link (O_TMPFILE) and rename in one threadpool job: off the event loop, so
      // concurrent uploads commit in parallel.
      const link = this.#temporaryPath === null;
      const temporary = this.#temporaryPath ?? temporaryNameFor(this.#target);
      await commitUpload(this.fd, osPath(temporary), {
        link,
        target: osPath(this.#target),
        durable: this.#durable,
      });
      this.#temporaryPath = null;
      return toStat(await fstat(this.fd));
    } catch (error) {
      throw storageError(error);
    } finally {
      this.#cleanUp();
    }
  }

  async abort(): Promise<void> {
    if (this.#finished) return;
    this.#finish();
    this.#cleanUp();
  }

  /**
   * A replaced file keeps its permission bits, group and dead properties (a 0600 file stays 0600).
   * Read through one O_PATH | O_NOFOLLOW descriptor of the name being replaced: the target was
   * resolved at open, so a symlink there now was put in its place since, and the upload must not
   * take the mode or the dead properties of the file such a link points to (another user's, in a
   * shared folder). The rename then replaces the link itself.
   */
  async #inheritFromTarget(uploaded: fs.BigIntStats): Promise<void> {
    let handle: number;
    try {
      handle = fs.openSync(osPath(this.#target), O_PATH | O_NOFOLLOW);
    } catch (error) {
      const code = errnoOf(error);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return;
      throw error;
    }
    try {
      const current = await fstat(handle);
      if (current.isSymbolicLink()) return;
      this.#inheritFrom(uploaded, current, `/proc/self/fd/${handle}`);
    } finally {
      closeQuietly(handle);
    }
  }

  #inheritFrom(uploaded: fs.BigIntStats, current: fs.BigIntStats, currentPath: string): void {
    refuseNonFile(current);
    // Set-id bits are dropped, as the kernel drops them when anyone writes to such a file. Only
    // when they differ: a chmod is a journalled inode update, and most uploads replace a file
    // that has the default mode.
    const mode = Number(current.mode) & 0o1777;
    if ((Number(uploaded.mode) & 0o7777) !== mode) fs.fchmodSync(this.fd, mode);
    if (uploaded.gid !== current.gid) {
      try {
        fs.fchownSync(this.fd, -1, Number(current.gid));
      } catch {
        // Possible when the user is in that group; otherwise the file keeps the user's group.
      }
    }
    copyUserXattrs(currentPath, this.#temporaryPath ?? `/proc/self/fd/${this.fd}`);
  }

  #finish(): void {
    if (this.#finished) throw new StorageError('INTERNAL', 'upload already committed or aborted');
    this.#finished = true;
  }

  /** Closes our descriptor and removes a temporary name that was not renamed into place. */
  #cleanUp(): void {
    closeQuietly(this.fd);
    if (this.#temporaryPath !== null) {
      try {
        fs.unlinkSync(osPath(this.#temporaryPath));
      } catch {
        // Already gone, or the directory went away: nothing is left behind either way.
      }
      this.#temporaryPath = null;
    }
  }
}

/** Adapts a node:fs callback API; used for the descriptor calls fs.promises only offers as FileHandles. */
function call<T = void>(
  start: (done: (error: NodeJS.ErrnoException | null, value?: T) => void) => void,
): Promise<T> {
  return new Promise((resolve, reject) =>
    start((error, value) => (error ? reject(error) : resolve(value as T))),
  );
}

/** `.<name>.privdav-<random>.tmp` beside the target: same filesystem, so rename is atomic. */
function temporaryNameFor(target: string): string {
  const name = basename(target);
  const random = randomNamePart();
  const stem = Buffer.byteLength(name, 'utf8') <= 200 ? `.${name}.privdav-` : '.privdav-';
  return `${dirname(target)}/${stem}${random}.tmp`;
}

// One name, two spellings: macOS sends file names decomposed (NFD), most other clients and
// systems store them composed (NFC). A request name that does not exist as given is looked up under
// its other normalisation, so Finder finds "café.txt" stored by another client, and its upload
// replaces that file instead of creating a look-alike beside it. The exact spelling always wins
// when it exists; listings keep names exactly as stored.
import * as fs from 'node:fs';
import { osPath } from './layout';

const NON_ASCII = /[^\x00-\x7f]/;

/** True when `davPath` could have another spelling (pure ASCII never does, and costs nothing). */
export function mayHaveOtherSpelling(davPath: string): boolean {
  return NON_ASCII.test(davPath);
}

/**
 * `fsPath` (below the share root `root`) with each missing component replaced by the spelling
 * stored on disk, where one exists. Costs one lstat when the path exists as given; on a miss, two
 * lstats per missing component (its NFC and NFD forms) and, for a name with composable characters
 * that is in neither form on disk, one scan of its directory.
 */
export function storedSpelling(fsPath: string, root: string): string {
  const prefix = root === '/' ? '/' : root + '/';
  if (!fsPath.startsWith(prefix) || existsAsGiven(fsPath)) return fsPath;
  const slash = fsPath.lastIndexOf('/');
  const parentGiven = fsPath.slice(0, slash) || '/';
  const name = fsPath.slice(slash + 1);
  const parent =
    parentGiven.length > root.length && NON_ASCII.test(parentGiven.slice(prefix.length))
      ? storedSpelling(parentGiven, root)
      : parentGiven;
  const stored = NON_ASCII.test(name) ? equivalentName(parent, name) : null;
  return (parent === '/' ? '' : parent) + '/' + (stored ?? name);
}

/** Anything but "no such entry" counts as existing, so real errors surface from the operation itself. */
function existsAsGiven(fsPath: string): boolean {
  try {
    fs.lstatSync(osPath(fsPath));
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code !== 'ENOENT';
  }
}

function equivalentName(directory: string, name: string): string | null {
  const join = (member: string): string => (directory === '/' ? '' : directory) + '/' + member;
  const composed = name.normalize('NFC');
  const decomposed = name.normalize('NFD');
  for (const candidate of [composed, decomposed]) {
    if (candidate !== name && existsAsGiven(join(candidate))) return candidate;
  }
  // A name already in both forms has no composable characters: only a spelling in neither form
  // (e.g. U+212B ANGSTROM SIGN) could match, which no client produces; skip the scan.
  if (composed === name && decomposed === name) return null;
  let handle: fs.Dir;
  try {
    handle = fs.opendirSync(osPath(directory));
  } catch {
    return null;
  }
  try {
    for (let entry = handle.readSync(); entry !== null; entry = handle.readSync()) {
      const member = entry.name;
      // U+FFFD: a name that is not UTF-8 on disk; its decoded form would name another file.
      if (NON_ASCII.test(member) && !member.includes('\uFFFD') && member.normalize('NFC') === composed)
        return member;
    }
  } finally {
    handle.closeSync();
  }
  return null;
}

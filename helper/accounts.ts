// Which accounts may log in, and what a worker needs to become one: NSS look-ups (getpwnam,
// group membership) and the account's umask. Runs in the monitor; nothing here trusts the
// caller's spelling of a name beyond passing it to getpwnam.

import { readFileSync } from 'node:fs';
import posix from 'posix';
import type { WorkerIdentity } from '../common/protocol';
import { isUserName, USER_NAME_RULE } from '../common/names';

export interface EligibilityPolicy {
  minUid: number;
  allowUsers: string[];
  allowGroups: string[];
  denyUsers: string[];
  /** Non-root mode: the one uid this daemon can serve. */
  onlyUid: number | null;
}

export interface Account {
  user: string;
  uid: number;
  gid: number;
  home: string;
  gecos: string;
}

export function lookUpAccount(name: string): Account | null {
  try {
    const entry = posix.getpwnam(name);
    // getpwnam may match a numeric string as a uid; we want names only, spelled exactly.
    if (entry.name !== name) return null;
    return { user: entry.name, uid: entry.uid, gid: entry.gid, home: entry.dir, gecos: entry.gecos };
  } catch {
    return null;
  }
}

/** Why an account may not log in, or null when it may. The reason is logged, never sent to the client. */
export function refusalReason(account: Account, policy: EligibilityPolicy): string | null {
  if (account.uid === 0 || account.user === 'root') return 'root is always refused';
  // Served everywhere or nowhere: cookies, the tilde layout and config all hold names to one grammar.
  if (!isUserName(account.user))
    return `the account name is outside the names privdav serves (${USER_NAME_RULE})`;
  if (policy.onlyUid !== null && account.uid !== policy.onlyUid)
    return 'non-root mode serves only its own user';
  if (policy.onlyUid === null && account.uid < policy.minUid) return `uid ${account.uid} is below min_uid`;
  if (policy.denyUsers.includes(account.user)) return 'listed in deny_users';
  const restricted = policy.allowUsers.length > 0 || policy.allowGroups.length > 0;
  if (!restricted) return null;
  if (policy.allowUsers.includes(account.user)) return null;
  if (policy.allowGroups.some((group) => isMember(account, group))) return null;
  return 'not in allow_users or allow_groups';
}

function isMember(account: Account, groupName: string): boolean {
  try {
    const group = posix.getgrnam(groupName);
    return group.gid === account.gid || group.members.includes(account.user);
  } catch {
    return false;
  }
}

/**
 * The umask a login would give this user: pam_umask's `umask=` in the GECOS field wins, then
 * UMASK in /etc/login.defs, then 022.
 */
export function accountUmask(account: Account, loginDefs = '/etc/login.defs'): number {
  const fromGecos = /(?:^|,)umask=(0?[0-7]{3})(?:,|$)/.exec(account.gecos);
  if (fromGecos) return parseInt(fromGecos[1]!, 8);
  try {
    const defs = readFileSync(loginDefs, 'utf8');
    const match = /^\s*UMASK\s+(0?[0-7]{3})\s*$/m.exec(defs);
    if (match) return parseInt(match[1]!, 8);
  } catch {
    // No login.defs: the conventional default.
  }
  return 0o022;
}

export function workerIdentity(account: Account): WorkerIdentity {
  return {
    user: account.user,
    uid: account.uid,
    gid: account.gid,
    home: account.home,
    umask: accountUmask(account),
  };
}

// Recent successful logins, kept by the monitor for credential_ttl: a keyed verifier of each
// (user, password) that PAM accepted, so that a restarted web process — whose credential cache
// died with it — does not send every logged-in user through PAM at once. The key never leaves
// the monitor; README "A cheap web-process restart" argues what an attacker gains. A login is
// reused only while the account's /etc/shadow line is unchanged: a new password, `usermod -L` or
// `chage -E` reach PAM at once.

import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

/** Bounded like the web process's credential cache: a flood of logins cannot grow it without limit. */
const MAX_ENTRIES = 50_000;

interface Entry {
  uid: number;
  verifier: Buffer;
  /** Digest of the account's shadow line when PAM accepted it ("" when it has none we can read). */
  shadow: string;
  /** When PAM's answer stops counting: the expiry of the cookie issued with it. */
  expires: number;
}

export class RecentLogins {
  /** Random per monitor, never written anywhere: a verifier is worthless without it. */
  readonly #key = randomBytes(32);
  readonly #entries = new Map<string, Entry>();
  readonly #shadow = new ShadowFile();

  /** After PAM accepted `password` for `user` (uid): remembered until `expires`. */
  remember(user: string, uid: number, password: string, expires: number): void {
    this.#entries.delete(user);
    if (this.#entries.size >= MAX_ENTRIES) this.#prune(Date.now());
    this.#entries.set(user, {
      uid,
      verifier: this.#verifier(user, password),
      shadow: this.#shadow.digestOf(user),
      expires,
    });
  }

  /**
   * When PAM accepted exactly this password for this user and uid less than credential_ttl ago:
   * the time that acceptance expires. Otherwise null (ask PAM).
   */
  check(user: string, uid: number, password: string, now = Date.now()): number | null {
    const entry = this.#entries.get(user);
    if (entry === undefined) return null;
    if (entry.expires <= now || entry.uid !== uid || entry.shadow !== this.#shadow.digestOf(user)) {
      this.#entries.delete(user);
      return null;
    }
    return timingSafeEqual(entry.verifier, this.#verifier(user, password)) ? entry.expires : null;
  }

  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }

  #verifier(user: string, password: string): Buffer {
    return createHmac('sha256', this.#key).update(user).update('\0').update(password).digest();
  }

  #prune(now: number): void {
    for (const [user, entry] of this.#entries) if (entry.expires <= now) this.#entries.delete(user);
    // Still full: forget the oldest (insertion order) rather than grow; they only cost a PAM call.
    let drop = this.#entries.size - MAX_ENTRIES + 1;
    for (const user of this.#entries.keys()) {
      if (drop-- <= 0) break;
      this.#entries.delete(user);
    }
  }
}

/**
 * /etc/shadow lines by user, re-read when the file changes (it is replaced on every change, so
 * its inode, size and mtime tell). Accounts from elsewhere (LDAP via NSS) and a monitor that
 * cannot read it (non-root mode) get "": their reuse is bounded by credential_ttl alone.
 */
class ShadowFile {
  #stamp = '';
  #digests = new Map<string, string>();

  digestOf(user: string): string {
    this.#refresh();
    return this.#digests.get(user) ?? '';
  }

  #refresh(): void {
    let stamp: string;
    try {
      const stat = statSync(SHADOW_PATH);
      stamp = `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
    } catch {
      stamp = 'none';
    }
    if (stamp === this.#stamp) return;
    this.#stamp = stamp;
    this.#digests = new Map();
    let text: string;
    try {
      text = readFileSync(SHADOW_PATH, 'utf8');
    } catch {
      return;
    }
    for (const line of text.split('\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      // A digest, not the line: the password hash need not stay in the monitor's memory.
      this.#digests.set(line.slice(0, colon), createHash('sha256').update(line).digest('base64'));
    }
  }
}

const SHADOW_PATH = '/etc/shadow';

// Names and their byte limits, one definition for every process: DavPaths and their segments, and
// the account names privdav serves — in config (allow_users, deny_users, allow_groups), at login
// (monitor), in cookies, and as tilde-layout share names (/~name/, layout and worker).

/** Longest DavPath (PATH_MAX); a longer one is refused before it reaches any system call. */
export const MAX_PATH_BYTES = 4096;
/** Longest path segment (NAME_MAX). */
export const MAX_SEGMENT_BYTES = 255;

/** Longest account name anywhere (Linux allows 32; sssd's name@domain is longer; refuse the absurd). */
export const MAX_USER_BYTES = 64;
/** Longest password forwarded to PAM. */
export const MAX_PASSWORD_BYTES = 1024;

/**
 * Account names as Debian's NSS and useradd (with --badname) accept them: conventional names,
 * dots (`john.doe`), `@` for directory users (`ann@corp`, sssd) and a final `$` (Samba machine
 * accounts, `svc_x$`). The leading letter or `_` keeps a name from being read as a uid or an
 * option; none of these characters needs escaping in a URL path or a log line. A name outside this
 * grammar is refused at login, so it never works in one place and fails in another.
 */
const USER_NAME = /^[A-Za-z_][A-Za-z0-9_.@-]*\$?$/;
export const USER_NAME_RULE =
  'letters, digits, "_", ".", "-", "@" and a final "$"; starting with a letter or "_"; at most 64 bytes';

export function isUserName(value: unknown): value is string {
  return typeof value === 'string' && value.length <= MAX_USER_BYTES && USER_NAME.test(value);
}

/**
 * Names the worker gives a collection while it replaces one (`.privdav-old-<16 hex>` for the old
 * destination set aside, `.privdav-new-<16 hex>` for a COPY being built): reserved, so they are
 * never listed, read or created through WebDAV, and a leftover after a crash is the server's to remove.
 */
export const TRANSFER_TEMPORARY_NAME = /^\.privdav-(?:old|new)-[0-9a-f]{16}$/;

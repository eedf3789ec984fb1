// Names and their byte limits, one definition for every process: DavPaths and their segments, and
// (see isUserName) the account names privdav accepts in config, at login, in cookies and in
// tilde-layout share names.

/** Longest DavPath (PATH_MAX); a longer one is refused before it reaches any system call. */
export const MAX_PATH_BYTES = 4096;
/** Longest path segment (NAME_MAX). */
export const MAX_SEGMENT_BYTES = 255;

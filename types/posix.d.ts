// Types for the parts of the `posix` package privdav uses (NSS look-ups; the package ships none).
declare module 'posix' {
  export interface Passwd {
    name: string;
    passwd: string;
    uid: number;
    gid: number;
    gecos: string;
    shell: string;
    dir: string;
  }
  export interface Group {
    name: string;
    passwd: string;
    gid: number;
    members: string[];
  }
  export function getpwnam(user: string | number): Passwd;
  export function getgrnam(group: string | number): Group;
  export function setrlimit(resource: string, limits: { soft?: number | null; hard?: number | null }): void;
  export function chroot(path: string): void;
  const posix: {
    chroot: typeof chroot;
    getpwnam: typeof getpwnam;
    getgrnam: typeof getgrnam;
    setrlimit: typeof setrlimit;
  };
  export default posix;
}

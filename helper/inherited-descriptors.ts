// What the monitor does first, as sshd does with closefrom(): close every descriptor it inherited
// beyond stdio, so nothing its starter left open (a shell's `30</etc/shadow`, a wrapper's pipe, a
// directory outside the chroot) can reach the web process or a worker (DESIGN invariant 10).

import { readFileSync, readdirSync } from 'node:fs';
import { closeFd } from '../native';

/** O_CLOEXEC as /proc/PID/fdinfo's octal `flags:` shows it. */
const O_CLOEXEC = 0o2000000;

/**
 * Closes every descriptor above 2 that is not close-on-exec, and returns their numbers. Node and
 * libuv open all of theirs with O_CLOEXEC, so at start the others are exactly the inherited ones
 * (a descriptor that survived the exec of node cannot have had the flag).
 */
export function closeInheritedDescriptors(): number[] {
  const closed: number[] = [];
  for (const name of readdirSync('/proc/self/fd')) {
    const fd = Number(name);
    if (!Number.isSafeInteger(fd) || fd <= 2) continue;
    let flags: number;
    try {
      const match = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
      if (match === null) continue;
      flags = parseInt(match[1]!, 8);
    } catch {
      // The descriptor of the directory listing itself, closed by now.
      continue;
    }
    if ((flags & O_CLOEXEC) !== 0) continue;
    closeFd(fd);
    closed.push(fd);
  }
  return closed.sort((a, b) => a - b);
}

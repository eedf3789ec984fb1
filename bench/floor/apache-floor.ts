// Apache mod_dav_fs as the bench runs it (bench/apache-server.ts: Debian's mpm_event defaults, no
// auth, no access log) over a user's home, for bench/floor/run.sh, which measures it beside the
// floors in the same run. Runs until SIGINT or SIGTERM, then stops Apache.
// Usage (as root): node apache-floor.js PORT USER DIRECTORY
import { ApacheServer } from '../apache-server';
import { lookUpAccount } from '../../helper/accounts';

const [port, user, directory] = process.argv.slice(2) as [string, string, string];
const account = lookUpAccount(user);
if (account === null || directory === undefined) {
  process.stderr.write('usage: apache-floor.js PORT USER DIRECTORY\n');
  process.exit(2);
}
const apache = new ApacheServer({
  name: 'apache',
  port: Number(port),
  user: { name: user, password: '', uid: account.uid, gid: account.gid, home: account.home },
  directory,
  requireAuth: false,
});
// Installed before the start, so that a stop during it still stops Apache.
const stop = (): void => void apache.stop().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
apache.start().catch((error: Error) => {
  process.stderr.write(`apache-floor: ${error.message}\n`);
  stop();
});

// The `privdav` command: `serve` (the default) starts the monitor, `check-config` validates a
// configuration file and reports every problem with its key and line.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Config, ConfigError, DEFAULT_CONFIG_PATH, configWarnings, loadConfig } from './config';
import { closeInheritedDescriptors } from './inherited-descriptors';
import { POOL_THREADS_FOR_FILES, pamConcurrency } from './pam';
import { lookUpAccount } from './accounts';
import { Logger, setLogFormat } from '../common/log';
import { Monitor } from './monitor';

const USAGE = `Usage: privdav [serve] [--config FILE]
       privdav check-config [--config FILE]
       privdav --version | --help

  serve          run the daemon (as root: serves every eligible user's files as that user;
                 as an ordinary user: serves only that user's own files)
  check-config   validate the configuration and report each problem with its key and line
  --config FILE  configuration file (default ${DEFAULT_CONFIG_PATH})
`;

function version(): string {
  const manifest = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  return manifest.version;
}

function parseArguments(argv: string[]): { command: string; config: string } {
  let command: string | null = null;
  let config = DEFAULT_CONFIG_PATH;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else if (arg === '--version' || arg === '-V') {
      process.stdout.write(`privdav ${version()}\n`);
      process.exit(0);
    } else if (arg === '--config' || arg === '-c') {
      const value = argv[++i];
      if (value === undefined) usageError('--config needs a file name');
      config = value;
    } else if (arg.startsWith('--config=')) {
      config = arg.slice('--config='.length);
    } else if (command === null && (arg === 'serve' || arg === 'check-config')) {
      command = arg;
    } else {
      usageError(`unknown argument: ${arg}`);
    }
  }
  return { command: command ?? 'serve', config };
}

function usageError(message: string): never {
  process.stderr.write(`privdav: ${message}\n\n${USAGE}`);
  process.exit(2);
}

/**
 * What the file cannot say about itself but `serve` would trip over: the web process's account
 * and the PAM service must exist on this machine. (Root only: non-root mode uses neither.)
 */
function systemProblems(config: Config): string[] {
  if (process.getuid!() !== 0) return [];
  const problems: string[] = [];
  if (lookUpAccount(config.server.user) === null) {
    problems.push(
      `server.user: the account "${config.server.user}" does not exist; create it with ` +
        `useradd --system --no-create-home --shell /usr/sbin/nologin ${config.server.user}`,
    );
  }
  const pamFile = `/etc/pam.d/${config.auth.pamService}`;
  if (!existsSync(pamFile)) {
    problems.push(`auth.pam_service: ${pamFile} does not exist; install config/pam.d/privdav there`);
  }
  return problems;
}

function main(): void {
  const { command, config: path } = parseArguments(process.argv.slice(2));
  // Before anything else is opened or spawned: nothing our starter left open goes further.
  const inherited = command === 'serve' ? closeInheritedDescriptors() : [];
  let config;
  try {
    config = loadConfig(path);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  if (command === 'check-config') {
    const problems = systemProblems(config);
    for (const problem of problems) process.stderr.write(`${path}: ${problem}\n`);
    if (problems.length > 0) process.exit(1);
    for (const warning of configWarnings(config)) process.stderr.write(`${path}: warning: ${warning}\n`);
    process.stdout.write(`${path}: OK\n`);
    return;
  }
  setLogFormat(config.log.format);
  const log = new Logger('monitor', config.log.level);
  if (inherited.length > 0) log.info('closed inherited descriptors', { fds: inherited.join(' ') });
  // PAM calls hold threadpool threads (pam_unix's failure delay holds one ~2 s): keep threads for
  // the monitor's other work beside them. libuv reads this when the pool is first used, which is
  // after this point (nothing before here is asynchronous).
  const poolSize = pamConcurrency(config.auth.pamConcurrency) + POOL_THREADS_FOR_FILES;
  if (Number(process.env.UV_THREADPOOL_SIZE ?? 0) < poolSize)
    process.env.UV_THREADPOOL_SIZE = String(poolSize);
  try {
    new Monitor(config, log).start();
  } catch (error) {
    log.error(`cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
}

main();

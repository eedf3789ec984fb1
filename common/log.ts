// A small structured logger for every privdav process: one line per event on stderr (journald
// adds the time), `level role[pid]: message key=value ...`. Values are quoted when needed and
// never contain control characters, so a hostile name cannot forge log lines.

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export class Logger {
  #level: LogLevel;
  readonly #prefix: string;

  constructor(role: string, level: LogLevel = 'info') {
    this.#prefix = `${role}[${process.pid}]`;
    this.#level = level;
  }

  setLevel(level: LogLevel): void {
    this.#level = level;
  }

  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    if (RANK[level] > RANK[this.#level]) return;
    let line = `${level} ${this.#prefix}: ${clean(message)}`;
    if (fields !== undefined) {
      for (const [key, value] of Object.entries(fields)) {
        if (value === undefined) continue;
        const text = clean(String(value));
        line += ` ${key}=${/[\s"=]/.test(text) || text === '' ? JSON.stringify(text) : text}`;
      }
    }
    process.stderr.write(`${line}\n`);
  }

  error(message: string, fields?: Record<string, unknown>): void {
    this.log('error', message, fields);
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.log('warn', message, fields);
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.log('info', message, fields);
  }
  debug(message: string, fields?: Record<string, unknown>): void {
    this.log('debug', message, fields);
  }
}

function clean(text: string): string {
  return text.replace(/[\x00-\x1f\x7f]/g, '?').slice(0, 1000);
}

/**
 * What the daemons (`flotilla scheduler`, `flotilla agent`) share on their command line:
 * every flag also reads a `FLOTILLA_*` environment variable, flags win over the environment,
 * the environment wins over the default. Durations accept systemd/Go-style spans.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { pino, type Logger } from 'pino';
import { parseDurationMs, UsageError } from './command-line.js';

export { parseDurationMs, UsageError } from './command-line.js';

/** Flags every daemon takes (the etcd TLS files are read by daemon/tls-flags.ts). */
export const commonFlags = {
  'etcd-endpoints': { type: 'string' },
  'etcd-cafile': { type: 'string' },
  'etcd-certfile': { type: 'string' },
  'etcd-keyfile': { type: 'string' },
  'etcd-user-file': { type: 'string' },
  prefix: { type: 'string' },
  'log-level': { type: 'string' },
  'metrics-listen': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** `etcd-endpoints` -> `FLOTILLA_ETCD_ENDPOINTS`. */
export function envName(flag: string): string {
  return `FLOTILLA_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/** Parsed flags with the environment as a fallback. */
export class DaemonArgs {
  constructor(
    private readonly values: Readonly<Record<string, string | boolean | undefined>>,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /** The flag's value, else `FLOTILLA_<FLAG>`, else undefined. */
  string(flag: string): string | undefined {
    const v = this.values[flag];
    if (typeof v === 'string') return v;
    const e = this.env[envName(flag)];
    return e === undefined || e === '' ? undefined : e;
  }

  stringOr(flag: string, fallback: string): string {
    return this.string(flag) ?? fallback;
  }

  boolean(flag: string): boolean {
    const v = this.values[flag];
    if (typeof v === 'boolean') return v;
    const e = this.env[envName(flag)];
    return e !== undefined && /^(1|true|yes|on)$/i.test(e);
  }

  /** A duration flag in milliseconds (`5s`, `500ms`, `1m`, or plain seconds). */
  durationMs(flag: string, fallbackMs: number): number {
    const v = this.string(flag);
    if (v === undefined) return fallbackMs;
    const ms = parseDurationMs(v);
    if (ms === undefined) {
      throw new UsageError(`--${flag}=${v}: expected a duration such as 5s, 500ms or 1m`);
    }
    return ms;
  }

  /** A positive integer flag. */
  integer(flag: string, fallback: number): number {
    const v = this.string(flag);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) {
      throw new UsageError(`--${flag}=${v}: expected a whole number`);
    }
    return n;
  }

  /** Comma-separated list, e.g. etcd endpoints. */
  list(flag: string, fallback: readonly string[]): string[] {
    const v = this.string(flag);
    if (v === undefined) return [...fallback];
    return v
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  }
}

/** Parses argv against the common flags plus the daemon's own; unknown flags are usage errors. */
export function parseDaemonArgs(
  argv: readonly string[],
  own: NonNullable<ParseArgsConfig['options']>,
): DaemonArgs {
  try {
    const { values } = parseArgs({
      args: [...argv],
      options: { ...commonFlags, ...own },
      allowPositionals: false,
      strict: true,
    });
    return new DaemonArgs(values as Record<string, string | boolean | undefined>);
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

/** The default etcd endpoint for a local cluster. */
export const defaultEtcdEndpoints = ['http://127.0.0.1:2379'];
export const defaultPrefix = '/flotilla/';

/** JSON logs on stderr (pino), so stdout stays free for the daemon's own output. */
export function daemonLogger(name: string, level: string): Logger {
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  if (!levels.includes(level)) {
    throw new UsageError(`--log-level=${level}: expected one of ${levels.join(', ')}`);
  }
  return pino({ name, level }, pino.destination(2));
}

/** Resolves with the first SIGTERM or SIGINT the process receives: a daemon's cue to stop. */
export function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals): void => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

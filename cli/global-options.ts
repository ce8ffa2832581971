/**
 * flotctl's global options: `--endpoint`, `--request-timeout` and `-o`. They may stand before
 * or after the verb (`flotctl -o json list-units` and `flotctl list-units -o json` are one
 * command), so they are taken out of the argument list first and each verb parses only its
 * own flags. `--` ends option scanning, as usual.
 */
import { parseDurationMs } from './daemon-options.js';
import { UsageError, type GlobalOptions, type OutputFormat } from './verb.js';

/** The API address when neither `--endpoint` nor FLOTCTL_ENDPOINT says otherwise. */
export const DEFAULT_ENDPOINT = '127.0.0.1:4700';
/** The deadline of each API call when `--request-timeout` is not given. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
/** The environment variable `--endpoint` falls back to. */
export const ENDPOINT_ENV = 'FLOTCTL_ENDPOINT';

/** Help text for the global options, shown by `flotctl --help` and every verb's help. */
export const GLOBAL_HELP = `Global options (before or after the command):
  --endpoint HOST:PORT     the scheduler API (env ${ENDPOINT_ENV}; default ${DEFAULT_ENDPOINT})
  --request-timeout DUR    deadline of each API call, e.g. 10s, 500ms (default 10s)
  -o, --output table|json  output format (default table)
  -h, --help               show help
`;

const LONG = new Map<string, 'endpoint' | 'request-timeout' | 'output'>([
  ['--endpoint', 'endpoint'],
  ['--request-timeout', 'request-timeout'],
  ['--output', 'output'],
  ['-o', 'output'],
]);

/** The argument list split into the global options and everything else, in order. */
export interface SplitArgs {
  readonly globals: GlobalOptions;
  readonly rest: string[];
}

/**
 * Takes the global options out of `argv` (anywhere before `--`) and resolves them with the
 * environment and defaults. Throws UsageError for a missing or bad value.
 */
export function splitGlobalOptions(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): SplitArgs {
  const raw: Partial<Record<'endpoint' | 'request-timeout' | 'output', string>> = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    let name = LONG.get(flag);
    let value: string | undefined = eq > 0 ? arg.slice(eq + 1) : undefined;
    if (name === undefined && arg.startsWith('-o') && arg.length > 2 && !arg.startsWith('--')) {
      name = 'output';
      value = arg.slice(2);
    }
    if (name === undefined) {
      rest.push(arg);
      continue;
    }
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined || value === '--') throw new UsageError(`${flag} needs a value`);
      i += 1;
    }
    raw[name] = value;
  }
  return { globals: resolveGlobals(raw, env), rest };
}

function resolveGlobals(
  raw: Partial<Record<'endpoint' | 'request-timeout' | 'output', string>>,
  env: NodeJS.ProcessEnv,
): GlobalOptions {
  const fromEnv = env[ENDPOINT_ENV];
  const endpoint = normalizeEndpoint(
    raw.endpoint ?? (fromEnv === undefined || fromEnv === '' ? DEFAULT_ENDPOINT : fromEnv),
  );
  let requestTimeoutMs = DEFAULT_REQUEST_TIMEOUT_MS;
  if (raw['request-timeout'] !== undefined) {
    const ms = parseDurationMs(raw['request-timeout']);
    if (ms === undefined || ms <= 0) {
      throw new UsageError(
        `--request-timeout=${raw['request-timeout']}: expected a positive duration such as 10s or 500ms`,
      );
    }
    requestTimeoutMs = ms;
  }
  const output = raw.output ?? 'table';
  if (!isOutputFormat(output)) {
    throw new UsageError(`-o ${output}: expected table or json`);
  }
  return { endpoint, requestTimeoutMs, output };
}

function isOutputFormat(value: string): value is OutputFormat {
  return value === 'table' || value === 'json';
}

/**
 * `http://host:port/` (fleetctl's habit) becomes `host:port`; a bare host gets port 4700.
 * gRPC target forms such as `dns:///host:port` pass through.
 */
export function normalizeEndpoint(endpoint: string): string {
  let e = endpoint.trim();
  if (e === '') throw new UsageError('--endpoint is empty');
  const scheme = /^(https?):\/\//.exec(e);
  if (scheme !== null) e = e.slice(scheme[0].length);
  if (e.endsWith('/')) e = e.slice(0, -1);
  if (e.includes('://') || e.includes(':///')) return e;
  const bracketed = e.startsWith('[');
  const hasPort = bracketed ? /\]:\d+$/.test(e) : /:\d+$/.test(e);
  return hasPort ? e : `${e}:4700`;
}

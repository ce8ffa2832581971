/**
 * flotctl's global options: `--endpoint`, `--request-timeout`, `-o`, and TLS: `--ca-file`,
 * `--cert-file`, `--key-file` (files read when connecting, in client-tls.ts). They may stand before
 * or after the verb (`flotctl -o json list-units` and `flotctl list-units -o json` are one
 * command), so they are taken out of the argument list first and each verb parses only its
 * own flags. `--` ends option scanning, as usual.
 */
import { parseDurationMs } from '../daemon/command-line.js';
import { UsageError, type ClientTlsFiles, type GlobalOptions, type OutputFormat } from './verb.js';

/** The API address when neither `--endpoint` nor FLOTCTL_ENDPOINT says otherwise. */
export const DEFAULT_ENDPOINT = '127.0.0.1:4700';
/** The deadline of each API call when `--request-timeout` is not given. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
/** The environment variable `--endpoint` falls back to. */
export const ENDPOINT_ENV = 'FLOTCTL_ENDPOINT';
/** The environment variables the TLS files fall back to. */
export const CA_FILE_ENV = 'FLOTCTL_CA_FILE';
export const CERT_FILE_ENV = 'FLOTCTL_CERT_FILE';
export const KEY_FILE_ENV = 'FLOTCTL_KEY_FILE';
/** Rows per page of a listing (ListUnits, ListMachines), when not the default. */
export const PAGE_SIZE_ENV = 'FLOTCTL_PAGE_SIZE';
/** The default page size and the most the API gives in one page. */
export const MAX_PAGE_SIZE = 5_000;
/** The environment variable `--token` falls back to (better than the flag: ps shows flags). */
export const TOKEN_ENV = 'FLOTCTL_TOKEN';

/** Help text for the global options, shown by `flotctl --help` and every verb's help. */
export const GLOBAL_HELP = `Global options (before or after the command):
  --endpoint HOST:PORT     the scheduler API (env ${ENDPOINT_ENV}; default ${DEFAULT_ENDPOINT});
                           https://HOST:PORT speaks TLS, trusting the public roots;
                           A:PORT,B:PORT: replicas to fail over between
  --ca-file FILE           TLS, trusting the API certificate's CA in FILE (env ${CA_FILE_ENV})
  --cert-file FILE         client certificate, for an API with mutual TLS (env ${CERT_FILE_ENV})
  --key-file FILE          its key (env ${KEY_FILE_ENV})
  --token TOKEN            bearer token for an API with an auth policy (env ${TOKEN_ENV});
                           sent only over TLS or to a loopback endpoint
  --request-timeout DUR    deadline of each API call, e.g. 10s, 500ms (default 10s)
                           (env ${PAGE_SIZE_ENV}: rows per page of a listing, default ${MAX_PAGE_SIZE})
  -o, --output table|json  output format (default table)
  -h, --help               show help
`;

type GlobalFlag =
  'endpoint' | 'request-timeout' | 'output' | 'ca-file' | 'cert-file' | 'key-file' | 'token';

const LONG = new Map<string, GlobalFlag>([
  ['--endpoint', 'endpoint'],
  ['--request-timeout', 'request-timeout'],
  ['--output', 'output'],
  ['-o', 'output'],
  ['--ca-file', 'ca-file'],
  ['--cert-file', 'cert-file'],
  ['--key-file', 'key-file'],
  ['--token', 'token'],
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
  const raw: Partial<Record<GlobalFlag, string>> = {};
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
  raw: Partial<Record<GlobalFlag, string>>,
  env: NodeJS.ProcessEnv,
): GlobalOptions {
  const given = raw.endpoint ?? nonEmpty(env[ENDPOINT_ENV]) ?? DEFAULT_ENDPOINT;
  const endpoints = parseEndpoints(given);
  const endpoint = endpoints[0] ?? DEFAULT_ENDPOINT;
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
  const tls = resolveTls(raw, env, /^\s*https:\/\//i.test(given));
  const pageSize = resolvePageSize(nonEmpty(env[PAGE_SIZE_ENV]));
  const token = raw.token ?? nonEmpty(env[TOKEN_ENV]);
  if (token !== undefined) {
    for (const e of endpoints) checkToken(token, e, tls !== undefined);
  }
  return {
    endpoint,
    endpoints,
    requestTimeoutMs,
    output,
    pageSize,
    ...(tls === undefined ? {} : { tls }),
    ...(token === undefined ? {} : { token }),
  };
}

/** A token goes only over TLS or to this host; it must fit in a header. */
function checkToken(token: string, endpoint: string, tls: boolean): void {
  if (!/^[\x21-\x7e]{1,4096}$/.test(token)) {
    throw new UsageError(
      `--token (or ${TOKEN_ENV}): expected 1-4096 printable characters without spaces`,
    );
  }
  if (!tls && !isLoopbackEndpoint(endpoint)) {
    throw new UsageError(
      `--token would cross the network in plaintext to ${endpoint}: use TLS (--ca-file, or an https:// endpoint) or a loopback endpoint`,
    );
  }
}

/** `127.x.x.x:port`, `localhost:port` or `[::1]:port`. */
export function isLoopbackEndpoint(endpoint: string): boolean {
  return /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/.test(endpoint);
}

function resolvePageSize(raw: string | undefined): number {
  if (raw === undefined) return MAX_PAGE_SIZE;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE) {
    throw new UsageError(
      `${PAGE_SIZE_ENV}=${raw}: expected a whole number from 1 to ${MAX_PAGE_SIZE}`,
    );
  }
  return n;
}

/** TLS when the endpoint is https:// or any TLS file is given; the files are read later. */
function resolveTls(
  raw: Partial<Record<GlobalFlag, string>>,
  env: NodeJS.ProcessEnv,
  https: boolean,
): ClientTlsFiles | undefined {
  const caFile = raw['ca-file'] ?? nonEmpty(env[CA_FILE_ENV]);
  const certFile = raw['cert-file'] ?? nonEmpty(env[CERT_FILE_ENV]);
  const keyFile = raw['key-file'] ?? nonEmpty(env[KEY_FILE_ENV]);
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new UsageError(
      `--cert-file and --key-file go together (or ${CERT_FILE_ENV} and ${KEY_FILE_ENV}): give both or neither`,
    );
  }
  if (!https && caFile === undefined && certFile === undefined) return undefined;
  return {
    ...(caFile === undefined ? {} : { caFile }),
    ...(certFile === undefined ? {} : { certFile }),
    ...(keyFile === undefined ? {} : { keyFile }),
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function isOutputFormat(value: string): value is OutputFormat {
  return value === 'table' || value === 'json';
}

/** The most replicas one `--endpoint` may name. */
export const MAX_ENDPOINTS = 16;

/**
 * `a:4700,b:4700`: the replicas flotctl fails over between, each normalized, duplicates
 * dropped. Throws UsageError for an empty entry or more than {@link MAX_ENDPOINTS}.
 */
export function parseEndpoints(given: string): string[] {
  const parts = given.split(',');
  if (parts.length > MAX_ENDPOINTS) {
    throw new UsageError(
      `--endpoint names ${parts.length} endpoints: give at most ${MAX_ENDPOINTS} replicas`,
    );
  }
  const https = /^\s*https:\/\//i.test(given);
  const endpoints = parts.map((part) => {
    if (part.trim() === '') {
      throw new UsageError(`--endpoint=${given}: an endpoint is empty (expected a:4700,b:4700)`);
    }
    // TLS is chosen once for all of them (resolveTls reads the first's scheme).
    if (https !== /^\s*https:\/\//i.test(part) && /^\s*https?:\/\//i.test(part)) {
      throw new UsageError(`--endpoint=${given}: use https:// for all endpoints or for none`);
    }
    return normalizeEndpoint(part);
  });
  return [...new Set(endpoints)];
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

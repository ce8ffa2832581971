/**
 * What every `flotctl` verb is made of: the `Verb` shape, the IO it writes to, the global
 * options it runs with and the exit codes. Kept apart from main.ts so verb files import it
 * without an import cycle.
 */

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../daemon/command-line.js';

type FlagSpec = NonNullable<ParseArgsConfig['options']>;

/** Exit codes: success, a problem with what was asked about, a problem with how it was asked. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Where a verb writes; tests capture these instead of the process streams. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** stdout is a terminal: progress lines and in-place redraws are drawn only then. */
  readonly isTty?: boolean;
  /** Aborted on Ctrl-C (SIGINT, SIGTERM): verbs that follow a stream stop and exit 0. */
  readonly signal?: AbortSignal;
}

/** `-o table` (default) or `-o json`. */
export type OutputFormat = 'table' | 'json';

/** flotctl's TLS files, read when it connects; see global-options.ts. */
export interface ClientTlsFiles {
  /** `--ca-file`: the CA of the API's certificate. Absent: the public roots. */
  readonly caFile?: string;
  /** `--cert-file` and `--key-file`, both or neither: for an API with mutual TLS. */
  readonly certFile?: string;
  readonly keyFile?: string;
}

/** The options every verb accepts, before or after its name; see global-options.ts. */
export interface GlobalOptions {
  /** host:port of a scheduler's API. Flag `--endpoint`, env FLOTCTL_ENDPOINT, default 127.0.0.1:4700. */
  readonly endpoint: string;
  /**
   * Every replica named (`--endpoint a:4700,b:4700`), `endpoint` first; calls fail over
   * between them (client.ts). Absent: `endpoint` alone.
   */
  readonly endpoints?: readonly string[];
  /** The deadline of every API call, in ms (`--request-timeout`, default 10s). */
  readonly requestTimeoutMs: number;
  readonly output: OutputFormat;
  /** Rows per page of a listing flotctl asks for (env FLOTCTL_PAGE_SIZE, default 5000). */
  readonly pageSize: number;
  /** TLS towards the API (an https:// endpoint, or any TLS file given); absent: plaintext. */
  readonly tls?: ClientTlsFiles;
  /** Bearer token for an API with an auth policy (`--token`, env FLOTCTL_TOKEN). */
  readonly token?: string;
}

/** One `flotctl <verb>`: `run` gets the arguments after the verb and returns the exit code. */
export interface Verb {
  readonly name: string;
  /** One line for `flotctl --help`. */
  readonly summary: string;
  /** Full text for `flotctl <verb> --help`, starting with the usage line. */
  readonly help: string;
  run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number>;
}

/**
 * A verb as the verb table lists it: what `flotctl --help` and completion need (name and
 * summary) without its module, and `load` to import the module when the verb runs.
 */
export interface VerbEntry {
  readonly name: string;
  readonly summary: string;
  load(): Promise<Verb>;
}

/** A mistake in the command line itself: reported with the usage, exit code 2. */
export { UsageError };

/** A verb's own flags and its positional arguments, strictly: an unknown flag is a usage error. */
export function parseVerbArgs<T extends FlagSpec>(
  args: readonly string[],
  options: T,
): { values: ParsedResults<T>['values']; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      options,
      allowPositionals: true,
      strict: true,
    });
    return { values, positionals };
  } catch (err) {
    throw flagError(err) ?? err;
  }
}

/**
 * node:util parseArgs's errors (ERR_PARSE_ARGS_*) in flotctl's own words, one short line:
 * its text names the parser's workarounds, with a stray quote. Undefined for other errors.
 */
export function flagError(err: unknown): UsageError | undefined {
  if (!(err instanceof Error) || !('code' in err)) return undefined;
  const code = (err as { code: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS_')) return undefined;
  // The flag as parseArgs quotes it: '--bogus', '-l, --full', '--timeout <value>'.
  const quoted = /'([^']*)'/.exec(err.message)?.[1] ?? '';
  const flag = (quoted.split(', ').at(-1) ?? quoted).replace(/ <value>$/, '');
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    if (/^-\d/.test(flag)) return new UsageError(`${flag}: expected a whole number of 0 or more`);
    return new UsageError(`unknown flag ${flag}`);
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    if (/does not take an argument/.test(err.message)) {
      return new UsageError(`${flag} takes no value`);
    }
    if (/ambiguous/.test(err.message)) {
      return new UsageError(`${flag} needs a value (one starting with "-" goes as ${flag}=-...)`);
    }
    return new UsageError(`${flag} needs a value`);
  }
  return new UsageError(err.message.split('\n')[0] ?? code);
}

type ParsedResults<T extends FlagSpec> = ReturnType<
  typeof parseArgs<{ options: T; allowPositionals: true; strict: true }>
>;

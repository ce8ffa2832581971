/**
 * `flotilla`: the daemons' entry point. `flotilla scheduler ...` runs a scheduler replica,
 * `flotilla agent ...` a machine's agent, `flotilla cluster up|down|status` a local cluster.
 * Each subcommand's module is loaded with a dynamic `import()` only when it is asked for, so
 * `flotilla agent` never loads the scheduler (nor the scheduler the agent's runtime).
 *
 * Exit codes: 0 success (a daemon that shut down cleanly on SIGTERM), 1 failure, 2 usage.
 */
import { readFileSync } from 'node:fs';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from './verb.js';

/** A subcommand: where its code lives and how to run it. */
interface Subcommand {
  readonly name: string;
  readonly summary: string;
  /** Runs the subcommand; resolves to the exit code. */
  readonly run: (argv: string[]) => Promise<number>;
}

/** A daemon's `runX(argv)`: resolves when it has shut down, rejects when it cannot run. */
type DaemonMain = (argv: string[]) => Promise<void>;

/**
 * Loads `export` from the compiled module at `specifier` (relative to this file). The
 * specifier is a variable on purpose: the type checker does not follow it, so this entry
 * builds even while a subcommand's module is being written, and a missing one is a clear
 * error instead of a crash at startup.
 */
async function loadExport(specifier: string, name: string): Promise<unknown> {
  const url = new URL(specifier, import.meta.url).href;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' && String(err).includes(specifier.slice(3))) {
      throw new SubcommandMissingError(`${specifier} is not built (run: npm run build)`);
    }
    throw err;
  }
  const fn = mod[name];
  if (typeof fn !== 'function') {
    throw new SubcommandMissingError(`${specifier} does not export ${name}()`);
  }
  return fn;
}

/** A subcommand's compiled module is missing or does not export its entry function. */
export class SubcommandMissingError extends Error {
  readonly code = 'subcommand-missing';
}

function daemon(specifier: string, exportName: string): (argv: string[]) => Promise<number> {
  return async (argv) => {
    const run = (await loadExport(specifier, exportName)) as DaemonMain;
    await run(argv);
    return EXIT_OK;
  };
}

/** Every subcommand, in the order `flotilla --help` lists them. */
export const SUBCOMMANDS: readonly Subcommand[] = [
  {
    name: 'scheduler',
    summary: 'run a scheduler replica (gRPC API; the elected leader places units)',
    run: daemon('../scheduler/main.js', 'runScheduler'),
  },
  {
    name: 'agent',
    summary: "run a machine's agent (registers the machine, runs the units placed on it)",
    run: daemon('../agent/main.js', 'runAgent'),
  },
  {
    name: 'cluster',
    summary: 'start, stop or inspect a local cluster (etcd, 2 schedulers, N agents)',
    run: async (argv) => {
      const run = (await loadExport('../deploy/cluster/command.js', 'runCluster')) as (
        argv: string[],
      ) => Promise<number>;
      return run(argv);
    },
  },
];

/** The package version, read from package.json next to bin/ (dist/cli -> ../../). */
export function version(): string {
  try {
    const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
    const pkg = JSON.parse(text) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** `flotilla --help`. */
export function overview(): string {
  const width = Math.max(...SUBCOMMANDS.map((s) => s.name.length));
  return [
    'Usage: flotilla <command> [flags]',
    '',
    'Commands:',
    ...SUBCOMMANDS.map((s) => `  ${s.name.padEnd(width)}  ${s.summary}`),
    '',
    'Flags:',
    '  -h, --help     show this help ("flotilla <command> --help" for a command\'s flags)',
    '  -v, --version  print the version',
    '',
  ].join('\n');
}

/** Where {@link main} writes; tests capture these instead of the process streams. */
export interface FlotillaIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const processIo: FlotillaIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/**
 * Runs `flotilla` with `argv` (without node and the script) and resolves to the exit code.
 * Daemons resolve only once they have shut down (SIGTERM, SIGINT).
 */
export async function main(argv: readonly string[], io: FlotillaIo = processIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    io.stderr(overview());
    return EXIT_USAGE;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    io.stdout(overview());
    return EXIT_OK;
  }
  if (first === '--version' || first === '-v' || first === 'version') {
    io.stdout(`flotilla ${version()}\n`);
    return EXIT_OK;
  }
  const sub = SUBCOMMANDS.find((s) => s.name === first);
  if (sub === undefined) {
    io.stderr(`flotilla: unknown command "${first}"\n\n${overview()}`);
    return EXIT_USAGE;
  }
  try {
    return await sub.run(rest);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof UsageError || isUsageLike(err)) {
      io.stderr(`flotilla ${sub.name}: ${message}\n(run "flotilla ${sub.name} --help")\n`);
      return EXIT_USAGE;
    }
    io.stderr(`flotilla ${sub.name}: ${message}\n`);
    return EXIT_FAILURE;
  }
}

/** A usage error from a module that has its own UsageError class (code `usage`). */
function isUsageLike(err: unknown): boolean {
  if (!(err instanceof Error) || !('code' in err)) return false;
  const code = (err as { code: unknown }).code;
  return code === 'usage' || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_'));
}

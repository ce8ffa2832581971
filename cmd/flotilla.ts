/**
 * `flotilla`: the daemons' entry point (bin/flotilla). `flotilla scheduler ...` runs a
 * scheduler replica, `flotilla agent ...` a machine's agent, `flotilla cluster up|down|status`
 * a local cluster. cmd/ holds entry points only: nothing imports it, and it may import any
 * part. Each subcommand's module is loaded with a dynamic `import()` of a literal path, which
 * the type checker follows, only when that subcommand is asked for, so `flotilla agent` never
 * loads the scheduler (nor the scheduler the agent's runtime).
 *
 * Exit codes: 0 success (a daemon that shut down cleanly on SIGTERM), 1 failure, 2 usage.
 */
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from '../cli/verb.js';
import { buildVersion, versionLine } from '../lib/version.js';

/** A subcommand and how to run it. */
interface Subcommand {
  readonly name: string;
  readonly summary: string;
  /** Loads the subcommand's module and runs it; resolves to the exit code. */
  readonly run: (argv: string[]) => Promise<number>;
}

/** Every subcommand, in the order `flotilla --help` lists them. */
export const SUBCOMMANDS: readonly Subcommand[] = [
  {
    name: 'scheduler',
    summary: 'run a scheduler replica (gRPC API; the elected leader places units)',
    run: async (argv) => {
      const { runScheduler } = await import('../scheduler/main.js');
      await runScheduler(argv); // resolves when the daemon has shut down
      return EXIT_OK;
    },
  },
  {
    name: 'agent',
    summary: "run a machine's agent (registers the machine, runs the units placed on it)",
    run: async (argv) => {
      const { runAgent } = await import('../agent/main.js');
      await runAgent(argv);
      return EXIT_OK;
    },
  },
  {
    name: 'cluster',
    summary: 'start, stop or inspect a local cluster (etcd, 2 schedulers, N agents)',
    run: async (argv) => {
      const { runCluster } = await import('../deploy/cluster/command.js');
      return runCluster(argv);
    },
  },
];

/** The package version (package.json next to dist/). */
export function version(): string {
  return buildVersion().version;
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
    '  -v, --version  print the version and the commit it was built from',
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
    io.stdout(`${versionLine('flotilla')}\n`);
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

/**
 * `flotctl`: the CLI's entry point, the top floor of cli/ (see README.md). A verb is one entry
 * in the verb table (verb-table.ts), so adding one means writing a `Verb` in its own file under
 * verbs/ and listing it there; global options, dispatch, `--help`, Ctrl-C and exit codes stay
 * in one place. Only the verb that runs is loaded: `flotctl --help` loads no verb at all.
 *
 * Exit codes: 0 success, 1 failure (one line saying what to do, or the server's
 * `file:line: message` lines for a rejected unit file), 2 usage (the message and the usage).
 */
import { CliError } from './cli-error.js';
import { GLOBAL_HELP, splitGlobalOptions } from './global-options.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  flagError,
  UsageError,
  type CliIo,
  type GlobalOptions,
  type Verb,
} from './verb.js';
import { HIDDEN_VERB_TABLE, VERB_TABLE } from './verb-table.js';

export {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  UsageError,
  type CliIo,
  type GlobalOptions,
  type Verb,
} from './verb.js';
export { VERB_TABLE } from './verb-table.js';

function overview(): string {
  const width = Math.max(...VERB_TABLE.map((v) => v.name.length));
  const lines = VERB_TABLE.map((v) => `  ${v.name.padEnd(width)}  ${v.summary}`);
  return [
    'Usage: flotctl [global options] <command> [options] [arguments]',
    '',
    'Commands:',
    ...lines,
    '',
    GLOBAL_HELP,
    'Run "flotctl <command> --help" for the options of one command.',
    '',
  ].join('\n');
}

function verbHelp(verb: Verb): string {
  return `${verb.help}\n${GLOBAL_HELP}`;
}

/**
 * Runs `flotctl` with `argv` (without node and the script); resolves to the exit code. With
 * no `io`, writes to the process streams and turns Ctrl-C into an abort that streaming verbs
 * end cleanly on (a second Ctrl-C, or a verb that does not stop within a second, exits 130).
 */
export async function main(
  argv: readonly string[],
  io?: CliIo,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  if (io !== undefined) return dispatch(argv, io, env);
  const proc = processIo();
  try {
    return await dispatch(argv, proc.io, env);
  } finally {
    proc.dispose();
  }
}

async function dispatch(
  argv: readonly string[],
  io: CliIo,
  env: NodeJS.ProcessEnv,
): Promise<number> {
  let globals: GlobalOptions;
  let args: string[];
  try {
    const split = splitGlobalOptions(argv, env);
    globals = split.globals;
    args = split.rest;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr(`flotctl: ${err.message}\n\n${overview()}`);
    return EXIT_USAGE;
  }
  const [first, ...rest] = args;
  if (first === '--help' || first === '-h' || first === 'help') {
    const entry = VERB_TABLE.find((v) => v.name === rest[0]);
    io.stdout(entry === undefined ? overview() : verbHelp(await entry.load()));
    return EXIT_OK;
  }
  if (first === undefined) {
    io.stderr(overview());
    return EXIT_USAGE;
  }
  // `flotctl --version` is `flotctl version`, as most tools have both.
  const name = first === '--version' ? 'version' : first;
  const entry =
    VERB_TABLE.find((v) => v.name === name) ?? HIDDEN_VERB_TABLE.find((v) => v.name === name);
  if (entry === undefined) {
    io.stderr(`flotctl: unknown command "${first}"\n\n${overview()}`);
    return EXIT_USAGE;
  }
  const verb = await entry.load();
  const beforeDashes = rest.indexOf('--') < 0 ? rest : rest.slice(0, rest.indexOf('--'));
  const hidden = HIDDEN_VERB_TABLE.includes(entry);
  if (!hidden && (beforeDashes.includes('--help') || beforeDashes.includes('-h'))) {
    io.stdout(verbHelp(verb));
    return EXIT_OK;
  }
  try {
    return await verb.run(rest, io, globals);
  } catch (err) {
    const usage = err instanceof UsageError ? err : flagError(err);
    if (usage !== undefined) {
      // One line of what is wrong, then the usage lines only: the whole help is one flag away.
      io.stderr(
        `flotctl ${verb.name}: ${usage.message} (see flotctl ${verb.name} --help)\n\n${usageLines(verb.help)}`,
      );
      return EXIT_USAGE;
    }
    if (err instanceof CliError) {
      io.stderr(`${err.message}\n`);
      return EXIT_FAILURE;
    }
    const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
    io.stderr(`flotctl ${verb.name}: internal error: ${message}\n`);
    return EXIT_FAILURE;
  }
}

/** The `Usage:` lines at the head of a verb's help (up to its first blank line). */
function usageLines(help: string): string {
  const end = help.indexOf('\n\n');
  return `${end < 0 ? help : help.slice(0, end)}\n`;
}

/** The process streams, with Ctrl-C (SIGINT) and SIGTERM as an abort signal. */
function processIo(): { io: CliIo; dispose(): void } {
  const controller = new AbortController();
  let forced: NodeJS.Timeout | undefined;
  const onSignal = (): void => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
    forced = setTimeout(() => process.exit(130), 1000);
    forced.unref();
  };
  // `flotctl list-units | head -1`: a closed pipe ends the output, not with a stack trace.
  const onPipeError = (err: NodeJS.ErrnoException): void => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.stdout.on('error', onPipeError);
  return {
    io: {
      stdout: (text) => process.stdout.write(text),
      stderr: (text) => process.stderr.write(text),
      isTty: process.stdout.isTTY === true,
      signal: controller.signal,
    },
    dispose: () => {
      clearTimeout(forced);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

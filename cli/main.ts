/**
 * `flotctl`: the CLI's entry point and verb table. A verb is one entry in `VERBS`, so adding
 * `submit`, `start`, ... means writing a `Verb` in its own file and listing it here; the
 * dispatch, `--help` and exit codes stay in one place.
 */
import { EXIT_OK, EXIT_USAGE, UsageError, type CliIo, type Verb } from './verb.js';
import { verifyVerb } from './verify.js';

export { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, type CliIo, type Verb } from './verb.js';

/** Every verb, in the order `flotctl --help` lists them. */
export const VERBS: readonly Verb[] = [verifyVerb];

const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

function overview(): string {
  const width = Math.max(...VERBS.map((v) => v.name.length));
  const lines = VERBS.map((v) => `  ${v.name.padEnd(width)}  ${v.summary}`);
  return [
    'Usage: flotctl <command> [options] [arguments]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run "flotctl <command> --help" for the options of one command.',
    '',
  ].join('\n');
}

/** Run `flotctl` with `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--help' || first === '-h' || first === 'help') {
    const verb = VERBS.find((v) => v.name === rest[0]);
    io.stdout(verb === undefined ? overview() : verb.help);
    return EXIT_OK;
  }
  if (first === undefined) {
    io.stderr(overview());
    return EXIT_USAGE;
  }
  const verb = VERBS.find((v) => v.name === first);
  if (verb === undefined) {
    io.stderr(`flotctl: unknown command "${first}"\n\n${overview()}`);
    return EXIT_USAGE;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout(verb.help);
    return EXIT_OK;
  }
  try {
    return await verb.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError || isParseArgsError(err)) {
      io.stderr(`flotctl ${verb.name}: ${(err as Error).message}\n\n${verb.help}`);
      return EXIT_USAGE;
    }
    throw err;
  }
}

/** node:util parseArgs reports unknown options and missing values with these codes. */
function isParseArgsError(err: unknown): boolean {
  if (!(err instanceof Error) || !('code' in err)) return false;
  const code = (err as { code: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

/**
 * `flotctl verify FILE...`: offline validation of unit files, the same checks the API runs
 * before it writes anything. Prints `FILE:LINE: message` per problem (`FILE: message` when
 * no one line is at fault); the unit name is the file's basename.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';

import { fileTooLargeMessage, UNIT_FILE_MAX_BYTES, validateUnitFile } from '../../unit/index.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  type CliIo,
  type Verb,
  parseVerbArgs,
} from '../verb.js';

const HELP = `Usage: flotctl verify [-q] FILE...

Check unit files without contacting the cluster. Each file's name (its basename, e.g.
web@.service) is the unit name it is checked as. Prints FILE:LINE: message for each problem,
and "OK: N unit files" when there is none.

Options:
  -q, --quiet   print nothing when every file is valid

Exit status: 0 when every file is valid, 1 when any is not, 2 for a usage error.
`;

/** The lines `verify` prints for one file; empty when the file is valid. */
export async function verifyFile(path: string): Promise<string[]> {
  let text: string;
  try {
    // The size alone refuses a file over the limit: reading a huge one would cost for nothing.
    const size = (await stat(path)).size;
    if (size > UNIT_FILE_MAX_BYTES) return [`${path}: ${fileTooLargeMessage(size)}`];
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? String(err.code) : 'unknown error';
    return [`${path}: cannot read the file (${code})`];
  }
  return validateUnitFile(basename(path), text).map((e) =>
    e.line > 0 ? `${path}:${e.line}: ${e.message}` : `${path}: ${e.message}`,
  );
}

export const verifyVerb: Verb = {
  name: 'verify',
  summary: 'check unit files offline and report every problem with its line',
  help: HELP,
  async run(args: readonly string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, {
      quiet: { type: 'boolean', short: 'q' },
    });
    if (positionals.length === 0) {
      io.stderr(`flotctl verify: give at least one unit file\n\n${HELP}`);
      return EXIT_USAGE;
    }
    let failed = false;
    for (const path of positionals) {
      const lines = await verifyFile(path);
      if (lines.length > 0) failed = true;
      for (const line of lines) io.stdout(`${line}\n`);
    }
    if (failed) return EXIT_FAILURE;
    const n = positionals.length;
    if (values.quiet !== true) io.stdout(`OK: ${n} unit file${n === 1 ? '' : 's'}\n`);
    return EXIT_OK;
  },
};

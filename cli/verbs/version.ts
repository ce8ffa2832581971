/**
 * `flotctl version` (and `flotctl --version`): the version of flotctl and the commit it was
 * built from, offline, as `flotilla --version` prints its own (lib/version.ts).
 */
import { buildVersion, versionLine } from '../../lib/version.js';
import { printJson } from '../table.js';
import { EXIT_OK, UsageError, type CliIo, type GlobalOptions, type Verb } from '../verb.js';

export const versionVerb: Verb = {
  name: 'version',
  summary: 'print the version of flotctl and the commit it was built from',
  help: `Usage: flotctl version

Prints flotctl's version and the commit it was built from ("unknown commit" when it was built
without git), e.g. "flotctl 0.1.0 (commit 197b054a1c2d)". Needs no cluster. flotctl --version
does the same; with -o json: {"version", "commit", "dirty"}.
`,
  run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    if (args.length > 0) throw new UsageError(`unexpected argument "${args[0]}"`);
    if (globals.output === 'json') printJson(io, buildVersion());
    else io.stdout(`${versionLine('flotctl')}\n`);
    return Promise.resolve(EXIT_OK);
  },
};

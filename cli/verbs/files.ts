/**
 * The verbs about unit files themselves: `submit FILE...` puts them in the cluster (all or
 * nothing), `cat UNIT` prints one back byte for byte, `destroy UNIT...` removes units and
 * (unless `--no-block`) waits until no machine runs them any more.
 */
import { SubmitUnitsResponse, type UnitFile } from '../../proto/flotilla/v1/units.js';
import { Unit } from '../../proto/flotilla/v1/records.js';
import { withClient } from '../client.js';
import { printJson, printWarnings } from '../table.js';
import { readUnitFile, unitNameOf, unitNamesOf } from '../unit-args.js';
import type { Target } from '../unit-view.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  UsageError,
  type CliIo,
  type GlobalOptions,
  type Verb,
  parseVerbArgs,
} from '../verb.js';
import {
  outcomeJson,
  parseWaitOptions,
  readViews,
  WAIT_FLAGS,
  WAIT_HELP,
  waitForTargets,
} from '../wait.js';

const SUBMIT_HELP = `Usage: flotctl submit [--replace] FILE...

Submits unit files to the cluster without loading or starting them. Each unit is named after
its file (web@.service). All files are checked first and written in one transaction (more
than 128 in transactions of 128): when any is invalid, every problem is printed as
FILE:LINE: message and nothing is written. Submitting a file identical to the cluster's unit changes nothing.

Options:
  --replace   overwrite units whose file differs; their running instances restart.
              Refused while a rollout of the unit (or its template) is running or
              paused: flotctl update --force supersedes a rollout with a new file
`;

export const submitVerb: Verb = {
  name: 'submit',
  summary: 'submit unit files to the cluster (all or nothing)',
  help: SUBMIT_HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, { replace: { type: 'boolean' } });
    if (positionals.length === 0) throw new UsageError('give at least one unit file');
    const files: UnitFile[] = [];
    for (const path of positionals) files.push(await readUnitFile(path));
    const res = await withClient(globals, (api) =>
      api.submitUnits({
        files,
        replace: values.replace === true,
        desiredState: '',
        allowPending: false,
      }),
    );
    if (globals.output === 'json') {
      printJson(io, SubmitUnitsResponse.toJSON(res));
      return EXIT_OK;
    }
    for (const n of res.created) io.stdout(`Unit ${n} submitted\n`);
    for (const n of res.updated) io.stdout(`Unit ${n} replaced\n`);
    for (const n of res.unchanged) io.stdout(`Unit ${n} unchanged\n`);
    return EXIT_OK;
  },
};

const CAT_HELP = `Usage: flotctl cat UNIT

Prints the unit file the cluster holds for UNIT, byte for byte as it was submitted.
`;

export const catVerb: Verb = {
  name: 'cat',
  summary: 'print the unit file of a submitted unit',
  help: CAT_HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { positionals } = parseVerbArgs(args, {});
    const [arg, ...extra] = positionals;
    if (arg === undefined || extra.length > 0) throw new UsageError('give exactly one unit');
    const status = await withClient(globals, (api) => api.getUnit(unitNameOf(arg)));
    const unit = status.unit ?? Unit.create();
    if (globals.output === 'json') printJson(io, Unit.toJSON(unit));
    else io.stdout(unit.file);
    return EXIT_OK;
  },
};

const DESTROY_HELP = `Usage: flotctl destroy [--with-instances] [--no-block] [--timeout DUR] [--block-attempts N] UNIT...

Removes units from the cluster: their files are deleted, their placements go and their
containers stop. A path names the unit of its basename. Waits until no machine runs them.
A template with instances is refused (naming them) unless they are destroyed with it.

Options:
  --with-instances  destroy every instance of each named template too
${WAIT_HELP}
Exit status: 0 when every unit is gone, 1 when a unit is unknown (nothing is destroyed then)
or did not go in time, 2 for a usage error.
`;

export const destroyVerb: Verb = {
  name: 'destroy',
  summary: 'remove units from the cluster and stop them',
  help: DESTROY_HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, {
      ...WAIT_FLAGS,
      'with-instances': { type: 'boolean' },
    });
    if (positionals.length === 0) throw new UsageError('give at least one unit');
    const wait = parseWaitOptions(values);
    const named = unitNamesOf(positionals);
    const json = globals.output === 'json';
    return withClient(globals, async (api) => {
      const names = [...named];
      if (values['with-instances'] === true) {
        const seen = new Set(named);
        for (const t of named.filter((n) => n.includes('@.'))) {
          for (const i of await api.instancesOf(t)) if (!seen.has(i)) names.push(i);
        }
      }
      // Read before destroying: afterwards the API no longer lists the units, and waiting
      // needs to know where they ran.
      const views = wait.block ? await readViews(api, names) : undefined;
      const res = await api.destroyUnits(names);
      printWarnings(io, res.warnings);
      if (views === undefined) {
        if (json) printJson(io, { ...res, units: [] });
        else for (const n of res.destroyed) io.stdout(`Destroyed ${n}\n`);
        return EXIT_OK;
      }
      const targets = new Map<string, Target>(names.map((n) => [n, 'gone']));
      const outcomes = await waitForTargets(api, io, {
        views,
        targets,
        writeRevision: res.revision,
        limitMs: wait.limitMs,
        quiet: json,
      });
      if (json) printJson(io, { ...res, units: outcomes.map(outcomeJson) });
      return outcomes.every((o) => o.reached) ? EXIT_OK : EXIT_FAILURE;
    });
  },
};

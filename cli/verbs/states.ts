/**
 * `flotctl load|start|stop|unload UNIT...`: set what the user wants of units, then (unless
 * `--no-block`) wait until the cluster has it. load and start submit local unit files first
 * when the cluster lacks them (see unit-args.ts). Global units are never waited on, as with
 * fleetctl: they have no one machine to be on.
 */
import { withClient, type ApiClient } from '../client.js';
import { CliError } from '../errors.js';
import { printJson, printWarnings } from '../table.js';
import { isTemplateName, submitMissing, unitNamesOf } from '../unit-args.js';
import type { Target, UnitView } from '../unit-view.js';
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
  type WaitOptions,
} from '../wait.js';

const START_FLAGS = { ...WAIT_FLAGS, 'allow-pending': { type: 'boolean' } } as const;

/** What one of the four verbs does. */
interface StateVerbSpec {
  readonly name: 'load' | 'start' | 'stop' | 'unload';
  readonly summary: string;
  readonly description: string;
  readonly desired: 'inactive' | 'loaded' | 'launched';
  readonly target: Target;
  /** load and start accept local files and submit them first. */
  readonly acceptsFiles: boolean;
}

/** load and start: what admission refuses (instances that cannot be placed now) is queued. */
const ALLOW_PENDING_HELP = `  --allow-pending       accept instances of a template that cannot be placed now: they
                        wait for a machine (up to the template's ceiling); without it such a
                        request is refused with how many can be placed, and writes nothing
`;

function help(spec: StateVerbSpec): string {
  const what = spec.acceptsFiles ? 'UNIT|FILE...' : 'UNIT...';
  const pending = spec.acceptsFiles ? ' [--allow-pending]' : '';
  return `Usage: flotctl ${spec.name} [--no-block] [--timeout DUR] [--block-attempts N]${pending} ${what}

${spec.description}

Options:
${WAIT_HELP}${spec.acceptsFiles ? ALLOW_PENDING_HELP : ''}
Exit status: 0 when every unit got there, 1 when any did not (the reason is printed), 2 for a
usage error.
`;
}

function stateVerb(spec: StateVerbSpec): Verb {
  const text = help(spec);
  return {
    name: spec.name,
    summary: spec.summary,
    help: text,
    async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
      const flags = spec.acceptsFiles ? START_FLAGS : WAIT_FLAGS;
      const { values, positionals } = parseVerbArgs(args, flags);
      if (positionals.length === 0) throw new UsageError('give at least one unit');
      const wait = parseWaitOptions(values);
      const allowPending = 'allow-pending' in values && values['allow-pending'] === true;
      const names = unitNamesOf(positionals);
      if (spec.desired !== 'inactive') {
        const templates = names.filter(isTemplateName);
        const [first] = templates;
        if (first !== undefined) {
          throw new CliError(
            'refused',
            `${templates.join(', ')}: a template cannot be ${spec.desired}; ${spec.name} its instances instead, e.g. flotctl ${spec.name} ${first.replace('@.', '@1.')}`,
          );
        }
      }
      return withClient(globals, (api) =>
        setAndWait(api, io, globals, spec, { args: positionals, names, wait, allowPending }),
      );
    },
  };
}

async function setAndWait(
  api: ApiClient,
  io: CliIo,
  globals: GlobalOptions,
  spec: StateVerbSpec,
  req: { args: readonly string[]; names: string[]; wait: WaitOptions; allowPending: boolean },
): Promise<number> {
  const submitted = spec.acceptsFiles
    ? await submitMissing(api, io, req.args, spec.desired, req.allowPending)
    : undefined;
  // stop refuses units that are not loaded, as fleetctl does: stopping them would load them.
  let before: Map<string, UnitView> | undefined;
  if (spec.name === 'stop') {
    before = await readViews(api, req.names);
    for (const view of before.values()) {
      if (view.unit === undefined)
        throw new CliError('refused', `${view.name} is not a submitted unit`);
      if (view.unit.desiredState === 'inactive') {
        throw new CliError(
          'refused',
          `cannot stop ${view.name}: it is not loaded (flotctl start ${view.name} starts it)`,
        );
      }
    }
  }
  // Units the submit created are at the desired state already; the rest are set now. The
  // wait counts from the earlier of the two writes.
  const created = req.names.filter((n) => submitted?.created.has(n) === true);
  const rest = req.names.filter((n) => submitted?.created.has(n) !== true);
  const set =
    rest.length > 0 ? await api.setDesiredState(rest, spec.desired, req.allowPending) : undefined;
  printWarnings(io, set?.warnings ?? []);
  const res = {
    changed: [...created, ...(set?.changed ?? [])],
    unchanged: set?.unchanged ?? [],
    revision: submitted?.revision ?? set?.revision ?? 0n,
  };
  const json = globals.output === 'json';
  if (!req.wait.block) {
    if (json) printJson(io, { ...res, units: [] });
    else for (const n of res.changed) io.stdout(`Triggered unit ${n} ${spec.name}\n`);
    return EXIT_OK;
  }
  const views = before ?? (await readViews(api, req.names));
  const targets = new Map<string, Target>();
  for (const name of req.names) {
    const view = views.get(name);
    if (view?.global === true) {
      if (!json) io.stdout(`Triggered global unit ${name} ${spec.name}\n`);
    } else {
      targets.set(name, spec.target);
    }
  }
  const outcomes = await waitForTargets(api, io, {
    views,
    targets,
    writeRevision: res.revision,
    unchanged: new Set(res.unchanged),
    limitMs: req.wait.limitMs,
    quiet: json,
  });
  if (json) printJson(io, { ...res, units: outcomes.map(outcomeJson) });
  return outcomes.every((o) => o.reached) ? EXIT_OK : EXIT_FAILURE;
}

export const loadVerb = stateVerb({
  name: 'load',
  summary: 'place units on machines without starting them',
  description: `Places units on machines (desired state loaded) without starting them, submitting
local unit files first when the cluster does not have them, and waits until each is placed.
Loading a running unit stops it.`,
  desired: 'loaded',
  target: 'loaded',
  acceptsFiles: true,
});

export const startVerb = stateVerb({
  name: 'start',
  summary: 'start units, submitting and placing them first if needed',
  description: `Starts units (desired state launched), submitting local unit files first when the
cluster does not have them; an instance such as web@3.service is created from its submitted
template (or from web@.service next to it on disk). Waits until each runs; when a unit cannot
be placed, prints the scheduler's reasons and exits 1 at once.`,
  desired: 'launched',
  target: 'launched',
  acceptsFiles: true,
});

export const stopVerb = stateVerb({
  name: 'stop',
  summary: 'stop units, keeping them placed',
  description: `Stops running units but keeps them placed (desired state loaded), and waits until
their containers have stopped. Units that are not loaded cannot be stopped.`,
  desired: 'loaded',
  target: 'loaded',
  acceptsFiles: false,
});

export const unloadVerb = stateVerb({
  name: 'unload',
  summary: 'stop units and take them off their machines',
  description: `Stops units and removes them from their machines (desired state inactive); their
files stay submitted. Waits until no machine runs them.`,
  desired: 'inactive',
  target: 'inactive',
  acceptsFiles: false,
});

/**
 * `flotctl scale web@.service=5` (or `scale web 5`, or several `TEMPLATE=N` at once): make
 * exactly N numbered instances of a template exist and run, then wait until they do and the
 * instances scaled away are gone. The instances are read before scaling, so the wait knows
 * where the ones that go were running.
 */
import {
  Admission,
  type InstanceRange,
  type ScaleResponse,
} from '../../proto/flotilla/v1/units.js';
import { CliError } from '../errors.js';
import { parseUnitName } from '../../unit/index.js';
import { status } from '@grpc/grpc-js';
import { withClient, type ApiClient, type UnitListing } from '../client.js';
import { COUNT_WAIT_OVER, countOutcomeJson, waitForCounts } from '../count-wait.js';
import { printJson, printWarnings } from '../table.js';
import { UnitView, type Target } from '../unit-view.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  UsageError,
  type CliIo,
  type GlobalOptions,
  type Verb,
  parseVerbArgs,
} from '../verb.js';
import { outcomeJson, parseWaitOptions, WAIT_FLAGS, WAIT_HELP, waitForTargets } from '../wait.js';

const HELP = `Usage: flotctl scale [--no-block] [--timeout DUR] [--allow-pending] [--dry-run] TEMPLATE=N...
       flotctl scale [--no-block] [--timeout DUR] [--allow-pending] [--dry-run] TEMPLATE N

Makes exactly N numbered instances of a submitted template (web@1.service, web@2.service, ...)
exist and run: growing starts the lowest free numbers, shrinking destroys the highest. A
template may be given as web@.service, web@ or web. Waits until the instances run and the
ones scaled away have stopped; when an instance cannot be placed, prints the scheduler's
reasons and exits 1. Up to 20 instances, a line says where each runs; past that, the wait
counts them (a progress line on a terminal, then one line per template), and -o json gives
each template's counts ("templates") instead of each instance ("units").

A scale up is admitted first, before anything is written: over the template's ceiling (the
schedulers' --max-instances, or a lower MaxInstances= in its [X-Fleet]) it is refused; when
not all N can be placed now it is refused with "at most M of N can be placed now (reasons)",
unless --allow-pending. A scale down is always admitted.

Options:
${WAIT_HELP}  --allow-pending       accept instances that cannot be placed now: they wait for a
                        machine (up to the template's ceiling)
  --dry-run             print admission's verdict and write nothing; exit 0 when the scale
                        would be admitted, 1 when it would be refused
`;

const SCALE_FLAGS = {
  ...WAIT_FLAGS,
  'allow-pending': { type: 'boolean' },
  'dry-run': { type: 'boolean' },
} as const;

/** One template and the count it should have. */
interface ScaleRequestArg {
  readonly template: string;
  readonly count: number;
}

/** `web@.service=5 api=2` or `web 5`. */
export function parseScaleArgs(positionals: readonly string[]): ScaleRequestArg[] {
  const [first, second] = positionals;
  if (first === undefined) throw new UsageError('give a template and a count, e.g. web@.service=3');
  if (
    positionals.length === 2 &&
    second !== undefined &&
    !first.includes('=') &&
    !second.includes('=')
  ) {
    return [{ template: templateOf(first), count: countOf(second, first) }];
  }
  return positionals.map((arg) => {
    const eq = arg.lastIndexOf('=');
    if (eq <= 0) throw new UsageError(`"${arg}": expected TEMPLATE=COUNT, e.g. web@.service=3`);
    return { template: templateOf(arg.slice(0, eq)), count: countOf(arg.slice(eq + 1), arg) };
  });
}

function countOf(raw: string, arg: string): number {
  if (!/^\d+$/.test(raw)) throw new UsageError(`"${arg}": the count must be a whole number`);
  return Number(raw);
}

/** `web` and `web@` mean `web@.service`, as the API reads them; anything else must be a template. */
function templateOf(raw: string): string {
  let name = raw;
  if (!name.includes('@') && !name.includes('.')) name = `${name}@.service`;
  else if (name.endsWith('@')) name = `${name}.service`;
  let template = false;
  try {
    template = parseUnitName(name).isTemplate;
  } catch (err) {
    throw new UsageError(`"${raw}": ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!template)
    throw new UsageError(`"${raw}" is not a template: scale a template such as web@.service`);
  return name;
}

export const scaleVerb: Verb = {
  name: 'scale',
  summary: 'run exactly N instances of a template',
  help: HELP,
  async run(args: readonly string[], io: CliIo, globals: GlobalOptions): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, SCALE_FLAGS);
    const requests = parseScaleArgs(positionals);
    const wait = parseWaitOptions(values);
    const json = globals.output === 'json';
    const allowPending = values['allow-pending'] === true;
    if (values['dry-run'] === true) {
      return withClient(globals, async (api) => {
        const verdicts = [];
        for (const req of requests) {
          const res = await scaleOrExplain(api, req.template, req.count, {
            allowPending,
            dryRun: true,
          });
          const a = res.admission;
          if (a === undefined) throw new CliError('internal', 'the API gave no admission verdict');
          verdicts.push(a);
          if (!json) io.stdout(`Would be admitted: ${a.verdict}\n`);
        }
        if (json)
          printJson(
            io,
            verdicts.map((a) => Admission.toJSON(a)),
          );
        return EXIT_OK;
      });
    }
    return withClient(globals, async (api) => {
      const responses: ScaleResponse[] = [];
      const befores = new Map<string, UnitListing | undefined>();
      let revision = 0n;
      for (const req of requests) {
        // Read before the write, so the wait knows where the instances scaled away ran; only
        // while few exist, since a wait on many counts them instead.
        if (wait.block && req.count <= COUNT_WAIT_OVER)
          befores.set(req.template, await fewInstances(api, req.template));
        const res = await scaleOrExplain(api, req.template, req.count, { allowPending });
        printWarnings(io, res.warnings);
        responses.push(res);
        if (res.revision > revision) revision = res.revision;
        if (!json) io.stdout(`${scaleLine(req.template, res)}\n`);
        const a = res.admission;
        if (!json && a !== undefined && a.placeable < a.count) io.stdout(`Pending: ${a.verdict}\n`);
      }
      if (!wait.block) {
        if (json) printJson(io, responses.map(scaledJson));
        return EXIT_OK;
      }
      const few = responses.every((r) => befores.get(r.template) !== undefined);
      if (!few) {
        const outcomes = await waitForCounts(api, io, {
          scales: responses,
          limitMs: wait.limitMs,
          quiet: json,
        });
        if (json) {
          printJson(io, {
            scaled: responses.map(scaledJson),
            templates: outcomes.map(countOutcomeJson),
          });
        }
        return outcomes.every((o) => o.reached) ? EXIT_OK : EXIT_FAILURE;
      }
      const views = new Map<string, UnitView>();
      const targets = new Map<string, Target>();
      for (const res of responses) {
        const before = befores.get(res.template);
        if (before === undefined) continue;
        const listed = new Map(before.units.map((u) => [u.unit?.name ?? '', u]));
        const instances = instanceNames(res.template, res.instances);
        const destroyed = instanceNames(res.template, res.destroyed);
        for (const name of instances) targets.set(name, 'launched');
        for (const name of destroyed) targets.set(name, 'gone');
        for (const name of [...instances, ...destroyed]) {
          views.set(name, UnitView.fromStatus(name, listed.get(name), before.revision));
        }
      }
      const started = new Set(responses.flatMap((r) => instanceNames(r.template, r.started)));
      const unchanged = new Set([...targets.keys()].filter((n) => !started.has(n)));
      const outcomes = await waitForTargets(api, io, {
        views,
        targets,
        writeRevision: revision,
        unchanged,
        limitMs: wait.limitMs,
        quiet: json,
      });
      if (json) {
        printJson(io, {
          scaled: responses.map(scaledJson),
          units: outcomes.map(outcomeJson),
        });
      }
      return outcomes.every((o) => o.reached) ? EXIT_OK : EXIT_FAILURE;
    });
  },
};

/**
 * The template's units (itself and its instances) when at most {@link COUNT_WAIT_OVER} of
 * its instances exist, read in one small page; undefined when more do.
 */
async function fewInstances(api: ApiClient, template: string): Promise<UnitListing | undefined> {
  const parsed = parseUnitName(template);
  const glob = `${parsed.prefix}@*.${parsed.type}`;
  const page = await api.listUnitsPage({ nameGlob: glob, pageSize: COUNT_WAIT_OVER + 2 });
  if (page.nextPageToken !== '' || page.units.length > COUNT_WAIT_OVER + 1) return undefined;
  return { units: page.units, revision: page.revision, warnings: page.warnings };
}

/**
 * The scale; when its template is not submitted but a plain unit of that name is (`scale
 * hello=3` with hello.service), says so instead of "not submitted": the user named a unit
 * that scale cannot multiply.
 */
async function scaleOrExplain(
  api: ApiClient,
  template: string,
  count: number,
  opts: { allowPending?: boolean; dryRun?: boolean },
): Promise<ScaleResponse> {
  try {
    return await api.scale(template, count, opts);
  } catch (err) {
    if (!(err instanceof CliError) || err.grpcCode !== status.NOT_FOUND) throw err;
    const { prefix, type } = parseUnitName(template);
    const plain = `${prefix}.${type}`;
    const exists = await api.getUnit(plain).then(
      () => true,
      () => false,
    );
    if (!exists) throw err;
    throw new CliError(
      'refused',
      `${plain} is not a template: scale runs N instances of a template such as ${template} (submit one), while ${plain} runs once (flotctl start ${plain})`,
      status.FAILED_PRECONDITION,
    );
  }
}

function scaleLine(template: string, res: ScaleResponse): string {
  const total = res.instances.reduce((sum, r) => sum + r.last - r.first + 1, 0);
  const started = rangesText(res.template, res.started);
  return `Scaled ${template} to ${total}: started ${started}; destroyed ${rangesText(res.template, res.destroyed)}`;
}

/** A scale's answer for `-o json`, instances spelled out as names. */
function scaledJson(res: ScaleResponse) {
  return {
    template: res.template,
    started: instanceNames(res.template, res.started),
    destroyed: instanceNames(res.template, res.destroyed),
    instances: instanceNames(res.template, res.instances),
    revision: res.revision.toString(),
  };
}

/** The instance names of `ranges` of `template` (web@.service, 1..3 -> web@1.service ...). */
export function instanceNames(template: string, ranges: readonly InstanceRange[]): string[] {
  const [head, tail] = splitTemplate(template);
  const names: string[] = [];
  for (const r of ranges) for (let n = r.first; n <= r.last; n++) names.push(`${head}${n}${tail}`);
  return names;
}

/** `web@{1..3}.service, web@7.service`, as a shell would expand it; `none` when empty. */
function rangesText(template: string, ranges: readonly InstanceRange[]): string {
  if (ranges.length === 0) return 'none';
  const [head, tail] = splitTemplate(template);
  const shown = ranges
    .slice(0, 20)
    .map((r) =>
      r.first === r.last ? `${head}${r.first}${tail}` : `${head}{${r.first}..${r.last}}${tail}`,
    );
  if (ranges.length > shown.length) shown.push(`and ${ranges.length - shown.length} more ranges`);
  return shown.join(', ');
}

/** `web@.service` -> [`web@`, `.service`]. */
function splitTemplate(template: string): [string, string] {
  const at = template.indexOf('@');
  return [template.slice(0, at + 1), template.slice(at + 1)];
}

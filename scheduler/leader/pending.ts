/**
 * Which `unscheduled/` records the cluster should hold after a pass (docs/architecture.md,
 * "Pending costs one record per template"). Numbered instances of one template that wait for
 * the same reasons share ONE record under the template's name, `unscheduled/web@.service`,
 * which lists their numbers as ranges: 1,000,000 instances that cannot be placed cost what
 * one does. Everything else keeps a record of its own, as before: plain units, instances with
 * other names (`web@canary.service`), instances of the template that wait for other reasons
 * (a specifier in `[X-Fleet]`, a name-dependent conflict), and numbers beyond the record's
 * {@link MAX_WAITING_RANGES} ranges. Records of the old layout (one per instance) are simply
 * not wanted any more, so the pass that first sees them deletes them.
 */
import type { Unscheduled } from '../../proto/flotilla/v1/records.js';
import { addNumber, instanceNumber, sameSpans, type NumberSpan } from '../../lib/number-ranges.js';
import { templateOf } from '../../store/index.js';
import {
  CHEAP_ITEMS,
  runToEnd,
  type Plan,
  type Steps,
  type Unscheduled as PlannedReasons,
} from '../planner/index.js';
import type { ClusterView } from '../view/cluster-cache.js';

/**
 * Ranges one template record holds at most: about 30 KB of JSON. Instances beyond them (a
 * template whose waiting numbers are that fragmented) get records of their own.
 */
export const MAX_WAITING_RANGES = 1_000;

/** Instances of one template that wait for the same reasons. */
interface Group {
  readonly reasons: PlannedReasons;
  readonly numbers: number[];
}

/**
 * The unscheduled records the cluster should hold after this pass, by record name (a unit
 * name, or a template name for a shared record): the planner's reasons, shared per template
 * where they are alike, plus one per active unit whose file does not parse and that runs
 * nowhere. O(the units the plan left unplaced).
 */
export function wantedUnscheduled(
  view: Pick<ClusterView, 'snapshot' | 'invalid' | 'placements'>,
  plan: Pick<Plan, 'unscheduled'>,
  epoch: bigint,
): Map<string, Unscheduled> {
  return runToEnd(wantedUnscheduledSteps(view, plan, epoch));
}

/** {@link wantedUnscheduled} as steps: a checkpoint every {@link CHEAP_ITEMS} instances. */
export function* wantedUnscheduledSteps(
  view: Pick<ClusterView, 'snapshot' | 'invalid' | 'placements'>,
  plan: Pick<Plan, 'unscheduled'>,
  epoch: bigint,
): Steps<Map<string, Unscheduled>> {
  let n = 0;
  const out = new Map<string, Unscheduled>();
  const own = (name: string, u: PlannedReasons): void => {
    out.set(name, record(name, u, epoch));
  };
  // template -> reasons' key -> the instances waiting for them, in plan order (name order).
  const byTemplate = new Map<string, Map<string, Group>>();
  // Look-alike units share the planner's reasons array: their key is made once.
  const keys = new Map<readonly unknown[], string>();
  for (const [name, u] of plan.unscheduled) {
    if (++n % CHEAP_ITEMS === 0) yield;
    const template = templateOf(name);
    const number = template === undefined ? undefined : instanceNumber(name);
    if (template === undefined || number === undefined) {
      own(name, u);
      continue;
    }
    let groups = byTemplate.get(template);
    if (groups === undefined) byTemplate.set(template, (groups = new Map()));
    let key = keys.get(u.reasons);
    if (key === undefined) keys.set(u.reasons, (key = `${u.machines}\u0000${u.summary}`));
    const group = groups.get(key);
    if (group === undefined) groups.set(key, { reasons: u, numbers: [number] });
    else group.numbers.push(number);
  }
  for (const [template, groups] of byTemplate) {
    let shared: Group | undefined;
    for (const g of groups.values()) {
      if (shared === undefined || g.numbers.length > shared.numbers.length) shared = g;
    }
    for (const g of groups.values()) {
      if (g === shared) continue;
      for (const i of g.numbers) {
        own(instanceName(template, i), g.reasons);
        if (++n % CHEAP_ITEMS === 0) yield;
      }
    }
    if (shared === undefined) continue;
    const spans: NumberSpan[] = [];
    let waiting = 0;
    // Typed: a numeric sort without a JS callback (100,000 numbers in a few ms).
    yield;
    for (const i of Float64Array.from(shared.numbers).sort()) {
      if (++n % CHEAP_ITEMS === 0) yield;
      const last = spans[spans.length - 1];
      if (spans.length < MAX_WAITING_RANGES || (last !== undefined && i <= last.last + 1)) {
        addNumber(spans, i);
        waiting += 1;
      } else {
        own(instanceName(template, i), shared.reasons);
      }
    }
    out.set(template, {
      ...record(template, shared.reasons, epoch),
      waiting,
      waitingRanges: spans,
    });
  }
  const machines = view.snapshot.machines.length;
  for (const u of view.invalid) {
    if ((view.placements.get(u.name)?.size ?? 0) > 0) continue;
    out.set(u.name, {
      unit: u.name,
      machines,
      reasons: [{ reason: `unit file does not parse: ${u.problem}`, machines }],
      summary: `0/${machines} machines: unit file does not parse: ${u.problem}`,
      epoch,
      waiting: 0,
      waitingRanges: [],
    });
  }
  return out;
}

/**
 * Equal for publishing purposes: same machines considered, same reasons, same summary, and
 * for a template's record the same instances.
 */
export function sameReasons(a: Unscheduled, b: Unscheduled): boolean {
  return (
    a.machines === b.machines &&
    a.summary === b.summary &&
    a.reasons.length === b.reasons.length &&
    a.reasons.every(
      (r, i) => r.reason === b.reasons[i]?.reason && r.machines === b.reasons[i]?.machines,
    ) &&
    a.waiting === b.waiting &&
    sameSpans(a.waitingRanges, b.waitingRanges)
  );
}

function record(name: string, u: PlannedReasons, epoch: bigint): Unscheduled {
  return {
    unit: name,
    machines: u.machines,
    reasons: u.reasons.map((r) => ({ reason: r.reason, machines: r.machines })),
    summary: u.summary,
    epoch,
    waiting: 0,
    waitingRanges: [],
  };
}

/** `web@.service`, 7 -> `web@7.service`. */
function instanceName(template: string, n: number): string {
  const at = template.indexOf('@');
  return `${template.slice(0, at + 1)}${n}${template.slice(at + 1)}`;
}

/**
 * Admission: before a scale up or a start of a template's instances writes anything, the API
 * compares it with what the cluster can hold now and with the template's ceiling, so that a
 * typo (`scale api@.service=1000000`) is refused with the numbers instead of writing a
 * million records.
 *
 * - The ceiling: the lower of the scheduler's `--max-instances` and the template's
 *   `[X-Fleet] MaxInstances=` (a unit file may lower the operator's bound, never raise it).
 *   It bounds how many instances of the template may exist. Over it: INVALID_ARGUMENT, whatever
 *   `allow_pending` says.
 * - What fits now: the instances the request wants placed are placed one after the other by
 *   the planner's own ranking and feasibility chain (planner/capacity.ts) on the cluster as
 *   the mirror holds it, until the first that fits nowhere. Instances of one template place
 *   alike, so the rest would not fit either; the work is what fits plus one, and never more
 *   than the ceiling. (A template whose `[X-Fleet]` names the instance, `MachineID=%i` say,
 *   places each instance its own way: admission still stops at the first that fits nowhere,
 *   so it may count fewer than would fit; `allow_pending` then queues the rest.) Over what
 *   fits: FAILED_PRECONDITION "at most N of M can be placed now (reasons); pass
 *   --allow-pending to queue the rest", unless the request allows pending instances.
 *
 * A scale down, a scale to the count that exists, and a stop are never refused. Plain units
 * (not instances) are not admitted this way: starting one is one record, and a unit that
 * cannot be placed shows why in `flotctl status`, as in fleet.
 *
 * The snapshot holds only the placed units and the instances asked for, so a check costs
 * O(placements + machines), not O(units): pending units of other templates take no room.
 */
import type { Unit } from '../../proto/flotilla/v1/records.js';
import type { Admission as AdmissionVerdict } from '../../proto/flotilla/v1/units.js';
import type { Machine, MachineConfig, Placement } from '../../proto/flotilla/v1/records.js';
import type { UnitName } from '../../unit/index.js';
import { templateOf } from '../../store/index.js';
import {
  CHEAP_ITEMS,
  placeInOrderSteps,
  type Capacity,
  type PlannerUnit,
  type Snapshot,
  type Steps,
} from '../planner/index.js';
import { runSliced } from '../../lib/sliced.js';
import {
  activeDesired,
  buildSnapshot,
  isInvalidUnit,
  type ClusterRecords,
} from '../view/snapshot.js';
import { ApiError } from '../gate/errors.js';
import type { ApiCluster } from './reads.js';

/** Default of `--max-instances`: the ceiling of every template's instances. */
export const DEFAULT_MAX_INSTANCES = 10_000;

/** A template's ceiling and what sets it. */
export interface Ceiling {
  readonly value: number;
  /** `the scheduler's --max-instances` or `MaxInstances=50 in api@.service`. */
  readonly source: string;
  /** Whether the template's own MaxInstances= sets it (then the flag is the limit above). */
  readonly fromFile: boolean;
}

/**
 * The ceiling of `template`: the lower of `maxInstances` (the flag) and the MaxInstances= of
 * its file (`record`, the stored template or the one a request submits; undefined when none).
 */
export function ceilingOf(
  cluster: ApiCluster,
  template: string,
  record: Unit | undefined,
): Ceiling {
  const flag = cluster.maxInstances;
  const def = record === undefined ? undefined : cluster.definitions.shared(record);
  const own = def === undefined || isInvalidUnit(def) ? 0 : def.fleet.maxInstances;
  if (own > 0 && own < flag) {
    return { value: own, source: `MaxInstances=${own} in ${template}`, fromFile: true };
  }
  return { value: flag, source: "the scheduler's --max-instances", fromFile: false };
}

/**
 * Places the units of `wanted` (name -> its record as it would be written, loaded or
 * launched), in order, on the cluster as the mirror holds it; stops at the first that fits
 * nowhere. Only placed units are in the snapshot besides them (see the module comment). The
 * walk runs in slices of time (lib/sliced.ts): a scale's look at 100,000 instances took 1.5 s
 * of the replica's thread in one go, which its API and its leader's pass then waited out.
 */
export async function fitOf(
  cluster: ApiCluster,
  wanted: ReadonlyMap<string, Unit>,
  optional: ReadonlySet<string> = new Set(),
): Promise<Capacity> {
  return (await runSliced(fitSteps(cluster, wanted, optional))).value;
}

/**
 * {@link fitOf} as steps: a checkpoint every {@link CHEAP_ITEMS} records copied. The copy of
 * the mirror spans turns of the event loop, so it may hold changes of several revisions: the
 * verdict is about the cluster as it is, near enough, as it always was (nothing written is
 * conditioned on it, and the cluster moves between the look and the write anyway).
 */
function* fitSteps(
  cluster: ApiCluster,
  wanted: ReadonlyMap<string, Unit>,
  optional: ReadonlySet<string> = new Set(),
): Steps<Capacity> {
  const { mirror } = cluster;
  let n = 0;
  const machines = new Map<string, Machine>();
  for (const [id, e] of mirror.machines.entries()) machines.set(id, { ...e.value, id });
  const configs = new Map<string, MachineConfig>();
  for (const [id, e] of mirror.configs) configs.set(id, e.value);
  const units = new Map<string, Unit>();
  const placements = new Map<string, Map<string, Placement>>();
  for (const [name, byMachine] of mirror.placements) {
    const unit = mirror.units.get(name)?.value;
    if (unit !== undefined) units.set(name, unit);
    const copy = new Map<string, Placement>();
    for (const [machine, e] of byMachine) copy.set(machine, { ...e.value, machine });
    placements.set(name, copy);
    if (++n % CHEAP_ITEMS === 0) yield;
  }
  // Instances whose file places every instance alike share one parse: their planner units
  // are made here from it, without a parse or a name check each (a scale asks for thousands).
  const alike: PlannerUnit[] = [];
  for (const [name, unit] of wanted) {
    const shared = alikeUnit(cluster, name, unit);
    if (shared === undefined) units.set(name, unit);
    else {
      units.delete(name);
      placements.delete(name);
      alike.push(shared);
    }
    if (++n % CHEAP_ITEMS === 0) yield;
  }
  const records: ClusterRecords = { machines, configs, units, placements };
  const { snapshot } = buildSnapshot(records, cluster.definitions);
  const all: Snapshot = { ...snapshot, units: [...snapshot.units, ...alike] };
  return yield* placeInOrderSteps(all, [...wanted.keys()], optional);
}

/**
 * The planner unit of instance `name` (record `unit`, loaded or launched, not placed) from
 * the parse its template's file shares with every instance; undefined when the file does not
 * place its instances alike (or does not parse), so it must be parsed for this instance.
 */
function alikeUnit(cluster: ApiCluster, name: string, unit: Unit): PlannerUnit | undefined {
  const desired = activeDesired(unit);
  if (desired === undefined) return undefined;
  if ((cluster.mirror.placements.get(name)?.size ?? 0) > 0) return undefined;
  const def = cluster.definitions.sharedAlike(unit);
  if (def === undefined || isInvalidUnit(def) || def.name.template === '') return undefined;
  const { fleet, service } = def;
  return { name, template: def.name.template, fleet, resources: service.resources, desired };
}

/** What {@link admitScale} needs of a scale. */
export interface ScaleAsk {
  readonly template: UnitName;
  /** The template's record; undefined when it is gone, where only a scale down is possible. */
  readonly record: Unit | undefined;
  /** The template's numbered instances now, in number order. */
  readonly numbered: readonly { readonly number: number; readonly record: Unit }[];
  /** All its instances now, numbered or not. */
  readonly total: number;
  readonly count: number;
  readonly allowPending: boolean;
}

/**
 * Admits a scale, or throws its refusal (nothing is written either way); the verdict, for a
 * dry run's answer. See the module comment.
 */
export async function admitScale(cluster: ApiCluster, ask: ScaleAsk): Promise<AdmissionVerdict> {
  const T = ask.template.name;
  const { count } = ask;
  const existing = ask.numbered.length;
  const ceiling = ceilingOf(cluster, T, ask.record);
  const base = { template: T, count, ceiling: ceiling.value };
  if (count <= existing) {
    const verdict =
      count === existing
        ? `${T}=${count}: ${count} exist already; a scale to the same count is always admitted`
        : `${T}=${count}: a scale down (from ${existing}) is always admitted`;
    return { ...base, placeable: count, verdict, admitted: true };
  }
  if (ask.record === undefined) {
    throw new ApiError('not-found', `template ${T} is not submitted: submit it first`);
  }
  const others = ask.total - existing;
  // Never ask the planner about more than the ceiling: past it the answer is a refusal anyway.
  const probes = Math.min(count, ceiling.value);
  const fit = await scaleFit(cluster, ask, ask.record, probes);
  const fits = fitText(fit, count, probes);
  if (count + others > ceiling.value) {
    const also = others > 0 ? ` with the ${others} other instances of ${T}` : '';
    throw new ApiError(
      'invalid-argument',
      `${T}=${count}${also} is over its ceiling of ${ceiling.value} instances (${ceiling.source}); ${fits}; scale to at most ${Math.max(0, ceiling.value - others)}, or ${raiseAdvice(cluster, T, ceiling)}`,
    );
  }
  if (fit.placeable < count && !ask.allowPending) {
    throw new ApiError(
      'failed-precondition',
      `${T}=${count}: ${fits}; pass --allow-pending to queue the rest`,
    );
  }
  const pending = count - fit.placeable;
  const verdict =
    pending === 0
      ? `${T}=${count}: all ${count} can be placed now (ceiling ${ceiling.value})`
      : `${T}=${count}: ${fits}; the other ${pending} will wait (--allow-pending; ceiling ${ceiling.value})`;
  return { ...base, placeable: fit.placeable, verdict, admitted: true };
}

/**
 * Instances a scale's first look at what fits places; each further look places 8 times more,
 * so a typo costs one look at 64 and a scale that fits about 1.15 times its count.
 */
const FIRST_PROBES = 64;

/** What fits of the scale's first `probes` instances, in looks of growing size. */
async function scaleFit(
  cluster: ApiCluster,
  ask: ScaleAsk,
  record: Unit,
  probes: number,
): Promise<Capacity> {
  for (let limit = Math.min(probes, FIRST_PROBES); ; limit = Math.min(probes, limit * 8)) {
    const look = function* (): Steps<Capacity> {
      return yield* fitSteps(cluster, yield* scaleInstances(cluster, ask, record, limit));
    };
    const fit = (await runSliced(look())).value;
    if (fit.blocked !== undefined || limit >= probes) return fit;
  }
}

/**
 * The first `limit` instances a scale wants launched, in the order it numbers them: the
 * numbered instances it keeps, then the lowest free numbers it creates. As steps: a scale
 * to 100,000 makes 100,000 records.
 */
function* scaleInstances(
  cluster: ApiCluster,
  ask: ScaleAsk,
  record: Unit,
  limit: number,
): Steps<Map<string, Unit>> {
  const wanted = new Map<string, Unit>();
  for (const i of ask.numbered.slice(0, limit)) {
    wanted.set(i.record.name, { ...i.record, desiredState: 'launched' });
    if (wanted.size % CHEAP_ITEMS === 0) yield;
  }
  const taken = new Set(ask.numbered.map((i) => i.number));
  for (let n = 1; wanted.size < limit; n++) {
    if (taken.has(n)) continue;
    const name = `${ask.template.prefix}@${n}.${ask.template.type}`;
    wanted.set(name, cluster.instanceRecords.record(name, record, 'launched'));
    if (wanted.size % CHEAP_ITEMS === 0) yield;
  }
  return wanted;
}

/** A unit a start (or load) activates: created, or set from inactive. */
export interface ActivatedUnit {
  readonly name: UnitName;
  /** Its record as the request would write it (loaded or launched). */
  readonly record: Unit;
  /** True when the request creates its record. */
  readonly created: boolean;
}

/**
 * Admits a start (or load), or throws the first refusal; nothing is written either way. The
 * instances of each template are admitted; plain units are placed alongside (a peer the
 * instances follow) but never refused. `templates` are template files the request itself
 * submits (their MaxInstances= counts as the stored one's would). The instances of a template
 * that already wait for a machine (active, not placed) are placed first: a start of more than
 * 128 names arrives as several requests, and each must see the ones before it.
 */
export async function admitStart(
  cluster: ApiCluster,
  activated: readonly ActivatedUnit[],
  allowPending: boolean,
  templates: ReadonlyMap<string, Unit> = new Map(),
): Promise<void> {
  const byTemplate = new Map<string, number>();
  for (const a of activated) {
    const T = a.name.isInstance ? a.name.template : undefined;
    if (T !== undefined) byTemplate.set(T, (byTemplate.get(T) ?? 0) + 1);
  }
  if (byTemplate.size === 0) return;
  for (const T of byTemplate.keys()) {
    const record = templates.get(T) ?? cluster.mirror.units.get(T)?.value;
    const ceiling = ceilingOf(cluster, T, record);
    const created = activated.filter((a) => a.created && a.name.template === T).length;
    const total = (cluster.mirror.instances.get(T)?.size ?? 0) + created;
    if (created > 0 && total > ceiling.value) {
      throw new ApiError(
        'invalid-argument',
        `${T}: ${total} instances would exist, over its ceiling of ${ceiling.value} (${ceiling.source}); ${raiseAdvice(cluster, T, ceiling)}`,
      );
    }
  }
  if (allowPending) return;
  const requested = new Set(activated.map((a) => a.name.name));
  const wanted = new Map<string, Unit>();
  const waiting = new Map<string, number>();
  for (const T of byTemplate.keys()) {
    const w = waitingInstances(cluster, T, requested);
    waiting.set(T, w.size);
    for (const [name, unit] of w) wanted.set(name, unit);
  }
  const optional = new Set<string>();
  for (const a of activated) {
    wanted.set(a.name.name, a.record);
    if (!a.name.isInstance) optional.add(a.name.name);
  }
  const fit = await fitOf(cluster, wanted, optional);
  if (fit.blocked === undefined) return;
  const T = templateOf(fit.blocked.unit) ?? '';
  const asked = byTemplate.get(T) ?? 0;
  const before = waiting.get(T) ?? 0;
  const placed = fit.placed.filter((n) => templateOf(n) === T).length;
  const verb = activated[0]?.record.desiredState === 'loaded' ? 'loads' : 'starts';
  const these =
    before === 0
      ? `at most ${placed} of the ${instances(asked)} this request ${verb}`
      : `this request ${verb} ${instances(asked)} and ${before} already wait: at most ${placed} of those ${asked + before}`;
  throw new ApiError(
    'failed-precondition',
    `${T}: ${these} can be placed now (${fit.blocked.summary}); pass --allow-pending to queue the rest`,
  );
}

/**
 * The instances of `template` that are loaded or launched but placed nowhere, except those in
 * `skip`, in name order. O(instances of the template), which the ceiling bounds.
 */
function waitingInstances(
  cluster: ApiCluster,
  template: string,
  skip: ReadonlySet<string>,
): Map<string, Unit> {
  const { mirror } = cluster;
  const out = new Map<string, Unit>();
  const names = [...(mirror.instances.get(template) ?? [])].sort();
  for (const name of names) {
    if (skip.has(name) || (mirror.placements.get(name)?.size ?? 0) > 0) continue;
    const unit = mirror.units.get(name)?.value;
    if (unit !== undefined && unit.desiredState !== 'inactive') out.set(name, unit);
  }
  return out;
}

/** `1 instance`, `3 instances`. */
function instances(n: number): string {
  return n === 1 ? '1 instance' : `${n} instances`;
}

/** `at most 6 of 1000000 can be placed now (0/3 machines: ...)`, or how many at least. */
function fitText(fit: Capacity, count: number, probed: number): string {
  if (fit.blocked !== undefined) {
    return `at most ${fit.placeable} of ${count} can be placed now (${fit.blocked.summary})`;
  }
  return probed < count
    ? `at least ${fit.placeable} of ${count} can be placed now`
    : `all ${count} can be placed now`;
}

/** How to allow more: the flag is the operator's; a file's MaxInstances= may only lower it. */
function raiseAdvice(cluster: ApiCluster, template: string, ceiling: Ceiling): string {
  return ceiling.fromFile
    ? `raise MaxInstances= in ${template} (up to ${cluster.maxInstances}, the scheduler's --max-instances)`
    : "raise the schedulers' --max-instances (an operator's flag)";
}

/**
 * SummarizeInstances: a template's numbered instances counted by how they are doing, for a
 * client that waits on a large scale (`flotctl scale web=100000` polls this instead of
 * following 300,000 events: one placement, one state and one unit change per instance).
 *
 * The wanted instances are found through the mirror's index of the template's instances, so
 * counting them builds no names; the scaled-away ones are looked up by name, and the answer
 * gives back those still there, which the client asks about alone next time. A large
 * template is counted in slices of {@link SLICE_MS}, so a count of 1,000,000 never holds the
 * replica's thread; the figures may then span a few revisions, which a progress count can
 * afford (the client waits until a later answer shows everything done).
 *
 * @example
 *   const s = await summarizeInstances(cluster, {
 *     template: 'web@.service', sinceRevision: 812n, instances: [{ first: 1, last: 100 }],
 *     started: [{ first: 41, last: 100 }], destroyed: [],
 *   });
 *   s.launched; // 57: running on their machines, on the current file
 */
import type { Placement, UnitState } from '../../proto/flotilla/v1/records.js';
import type {
  InstanceRange,
  InstanceSummary,
  SummarizeInstancesRequest,
} from '../../proto/flotilla/v1/units.js';
import { inSpans, instanceNumber, spanCount } from '../../lib/number-ranges.js';
import { runSliced } from '../../lib/sliced.js';
import { isStoreError, type CacheEntry, type ClusterMirror } from '../../store/index.js';
import { parseUnitName, UnitError } from '../../unit/index.js';
import { canonicalTemplate } from '../gate/auth.js';
import { ApiError, formatUnitError } from '../gate/errors.js';
import { isInvalidUnit } from '../view/snapshot.js';
import { MIRROR_WAIT_MS, type ApiCluster } from './reads.js';
import { RUNNING_STATES } from './unit-status.js';

/** The most ranges in each of a request's lists. */
export const MAX_SUMMARY_RANGES = 100_000;
/** The most instance numbers a request may ask about, in all its lists. */
export const MAX_SUMMARY_NUMBERS = 2_000_000;
/** The most failures an answer carries. */
const MAX_FAILURES = 10;
/** The longest stretch of counting before the replica's other work gets a turn, ms. */
const SLICE_MS = 10;
/** Instances counted between two looks at the clock. */
const STEP = 256;

/** SummarizeInstances; see units.proto and this module's comment. */
export async function summarizeInstances(
  cluster: ApiCluster,
  req: SummarizeInstancesRequest,
): Promise<InstanceSummary> {
  const template = checkedTemplate(req.template);
  const instances = checkedRanges('instances', req.instances);
  const started = checkedRanges('started', req.started);
  const destroyed = checkedRanges('destroyed', req.destroyed);
  const asked = spanCount(instances) + spanCount(destroyed);
  if (asked > MAX_SUMMARY_NUMBERS) {
    throw new ApiError(
      'invalid-argument',
      `the request asks about ${asked} instances; at most ${MAX_SUMMARY_NUMBERS} at a time`,
    );
  }
  const { mirror } = cluster;
  try {
    await mirror.waitFor(req.sinceRevision, MIRROR_WAIT_MS);
  } catch (err) {
    if (!isStoreError(err, 'deadline')) throw err;
    throw new ApiError(
      'unavailable',
      `this scheduler's copy of the cluster has not reached revision ${req.sinceRevision} within ${MIRROR_WAIT_MS / 1000}s (it is at ${mirror.revision}); try again, or another replica`,
    );
  }
  const entry = mirror.units.get(template);
  const def = entry === undefined ? undefined : cluster.definitions.shared(entry.value);
  const global = def !== undefined && !isInvalidUnit(def) && def.fleet.global;
  const tally = new Tally(mirror, template, req.sinceRevision, started, global);
  const { value } = await runSliced(count(tally, mirror, template, instances, destroyed), {
    budgetMs: SLICE_MS,
  });
  return value;
}

/** The steps of one summary: the wanted instances through the index, then the scaled away. */
function* count(
  tally: Tally,
  mirror: ClusterMirror,
  template: string,
  instances: readonly InstanceRange[],
  destroyed: readonly InstanceRange[],
): Generator<void, InstanceSummary, undefined> {
  let seen = 0;
  let steps = 0;
  // An array walked by index: a generator's for-of over the set made an iterator result per
  // instance (about 16 bytes each, 100,000 of them per count).
  const names = [...(mirror.instances.get(template) ?? [])];
  for (let i = 0; i < names.length; i++) {
    if (++steps % STEP === 0) yield;
    const name = names[i] as string;
    const n = instanceNumber(name);
    if (n === undefined || !inSpans(instances, n)) continue;
    seen += 1;
    tally.wanted(name, n);
  }
  const [head, tail] = splitTemplate(template);
  const stopping: InstanceRange[] = [];
  for (const r of destroyed) {
    for (let n = r.first; n <= r.last; n++) {
      if (++steps % STEP === 0) yield;
      if (tally.gone(`${head}${n}${tail}`)) continue;
      const last = stopping[stopping.length - 1];
      if (last !== undefined && last.last === n - 1) last.last = n;
      else stopping.push({ first: n, last: n });
    }
  }
  const wanted = spanCount(instances);
  return {
    revision: mirror.revision,
    wanted,
    launched: tally.launched,
    placed: tally.placed,
    pending: tally.pending,
    pendingFinal: tally.pendingFinal,
    pendingSummary: tally.pendingSummary,
    failed: tally.failed,
    failures: tally.failures.map((f) => f.state),
    missing: wanted - seen,
    stopping: spanCount(stopping),
    stoppingRanges: stopping,
  };
}

/** The counts, instance by instance, judged as `flotctl`'s wait judges one unit. */
class Tally {
  launched = 0;
  placed = 0;
  pending = 0;
  pendingFinal = 0;
  pendingSummary = '';
  failed = 0;
  /** The lowest-numbered failures seen so far, at most {@link MAX_FAILURES}, by number. */
  readonly failures: { n: number; state: UnitState }[] = [];
  private readonly waiting;

  constructor(
    private readonly mirror: ClusterMirror,
    template: string,
    private readonly since: bigint,
    private readonly started: readonly InstanceRange[],
    private readonly global: boolean,
  ) {
    // Instances that wait alike share their template's record (leader/pending.ts).
    this.waiting = mirror.unscheduled.get(template);
  }

  /** Counts instance `n` (`name`), which should run. */
  wanted(name: string, n: number): void {
    const { mirror } = this;
    const placements = mirror.placements.get(name);
    const hash = mirror.units.get(name)?.value.hash ?? '';
    if (placements === undefined || placements.size === 0) {
      this.unplaced(name, n);
      return;
    }
    const failed = this.global
      ? this.globalVerdict(name, placements, hash)
      : this.plainVerdict(name, placements, hash);
    if (failed === 'launched') {
      this.launched += 1;
      return;
    }
    this.placed += 1;
    if (failed === undefined) return;
    if (failed.modRevision <= this.since && inSpans(this.started, n)) return; // an earlier life's
    this.failed += 1;
    this.noteFailure(n, failed.value);
  }

  /** Whether a scaled-away instance is gone: no record, no placement, nothing running. */
  gone(name: string): boolean {
    const { mirror } = this;
    if (mirror.units.get(name) !== undefined) return false;
    if ((mirror.placements.get(name)?.size ?? 0) > 0) return false;
    const state = mirror.states.get(name)?.value;
    if (state !== undefined && mayRun(state)) return false;
    for (const copy of mirror.copies.get(name)?.values() ?? [])
      if (mayRun(copy.value)) return false;
    return true;
  }

  /** Launched, or the failure report that counts against it, or undefined (on its way). */
  private plainVerdict(
    name: string,
    placements: ReadonlyMap<string, CacheEntry<Placement>>,
    hash: string,
  ): 'launched' | CacheEntry<UnitState> | undefined {
    const state = this.mirror.states.get(name);
    if (state === undefined || !placements.has(state.value.machine)) return undefined;
    const s = state.value;
    if (s.activeState === 'active' && sameFile(hash, s.hash)) return 'launched';
    return s.activeState === 'failed' ? state : undefined;
  }

  /** A Global instance: launched when every placed copy runs; failed when any copy failed. */
  private globalVerdict(
    name: string,
    placements: ReadonlyMap<string, CacheEntry<Placement>>,
    hash: string,
  ): 'launched' | CacheEntry<UnitState> | undefined {
    const copies = this.mirror.copies.get(name);
    let all = true;
    for (const machine of placements.keys()) {
      const copy = copies?.get(machine);
      if (copy?.value.activeState === 'failed') return copy;
      if (copy === undefined || !RUNNING_STATES.has(copy.value.activeState)) all = false;
      else if (!sameFile(hash, copy.value.hash)) all = false;
    }
    return all ? 'launched' : undefined;
  }

  private unplaced(name: string, n: number): void {
    const own = this.mirror.unscheduled.get(name);
    const shared =
      own === undefined &&
      this.waiting !== undefined &&
      inSpans(this.waiting.value.waitingRanges, n)
        ? this.waiting
        : undefined;
    const reasons = own ?? shared;
    if (reasons === undefined) return; // not placed yet
    this.pending += 1;
    if (reasons.modRevision > this.since || !inSpans(this.started, n)) this.pendingFinal += 1;
    if (this.pendingSummary === '') this.pendingSummary = reasons.value.summary;
  }

  private noteFailure(n: number, state: UnitState): void {
    const { failures } = this;
    if (failures.length === MAX_FAILURES && (failures[MAX_FAILURES - 1]?.n ?? 0) < n) return;
    let i = failures.length;
    while (i > 0 && (failures[i - 1]?.n ?? 0) > n) i--;
    failures.splice(i, 0, { n, state });
    if (failures.length > MAX_FAILURES) failures.pop();
  }
}

/** The agent runs the unit's current file (when both sides say which one). */
function sameFile(want: string, have: string): boolean {
  return want === '' || have === '' || want === have;
}

/** Agent active states of a unit that is not running. */
const STOPPED: ReadonlySet<string> = new Set(['inactive', 'failed', '']);

/** The agent reports the unit not stopped: its container may still run. */
function mayRun(state: UnitState): boolean {
  return !STOPPED.has(state.activeState);
}

function checkedTemplate(raw: string): string {
  const template = canonicalTemplate(raw);
  try {
    if (parseUnitName(template).isTemplate) return template;
  } catch (err) {
    if (err instanceof UnitError) throw new ApiError('invalid-argument', formatUnitError(err));
    throw err;
  }
  throw new ApiError('invalid-argument', `${raw} is not a template such as web@.service`);
}

/** The ranges sorted and merged; INVALID_ARGUMENT for an empty or out-of-bounds range. */
function checkedRanges(field: string, ranges: readonly InstanceRange[]): InstanceRange[] {
  if (ranges.length > MAX_SUMMARY_RANGES) {
    throw new ApiError(
      'invalid-argument',
      `${field}: ${ranges.length} ranges; at most ${MAX_SUMMARY_RANGES}`,
    );
  }
  for (const r of ranges) {
    if (r.first < 1 || r.last < r.first) {
      throw new ApiError(
        'invalid-argument',
        `${field}: ${r.first}..${r.last} is not a range of instance numbers (1 <= first <= last)`,
      );
    }
  }
  const sorted = [...ranges].sort((a, b) => a.first - b.first);
  const out: InstanceRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && r.first <= last.last + 1) last.last = Math.max(last.last, r.last);
    else out.push({ first: r.first, last: r.last });
  }
  return out;
}

/** `web@.service` -> [`web@`, `.service`]. */
function splitTemplate(template: string): [string, string] {
  const at = template.indexOf('@');
  return [template.slice(0, at + 1), template.slice(at + 1)];
}

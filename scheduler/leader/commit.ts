/**
 * From a plan to etcd: the leader's writes, each transaction fenced on its term and holding at
 * most 128 ops (store's chunkOps), every op conditioned on what the leader saw:
 *
 * - a new placement is created only where none exists (create revision 0);
 * - a placement is deleted, or updated in place (desired state or hash changed), only if its
 *   mod revision is still the one the leader saw;
 * - unscheduled/<name> is written only when its reasons changed, and deleted once the unit is
 *   placed or no longer wanted; instances of a template that wait alike share one record
 *   (pending.ts).
 *
 * Two phases keep "never on two machines" true at every revision, also when a plan needs
 * several transactions: first every delete and update, then, only if all of those applied,
 * the new placements. A moved unit is therefore briefly on no machine, never on two.
 */
import type { Placement, Unscheduled } from '../../proto/flotilla/v1/records.js';
import {
  codecs,
  fencedTxn,
  type FencedTxnOptions,
  type BatchOp,
  type CacheEntry,
  type Keys,
  type Store,
} from '../../store/index.js';
import type { ClusterView } from '../view/cluster-cache.js';
import { SchedulerError } from '../errors.js';
import type { Term } from './leadership.js';
import { sameReasons, wantedUnscheduledSteps } from './pending.js';
import { CHEAP_ITEMS, runToEnd, type Plan, type PortChange, type Steps } from '../planner/index.js';

/** The writes one pass makes, in the order they must be applied. */
export interface CommitWork {
  /** Placement deletes and in-place updates. */
  readonly first: readonly BatchOp[];
  /** New placements and unscheduled records; applied only when all of `first` applied. */
  readonly second: readonly BatchOp[];
  /** Removals left out: their placements changed after the view (a sliced pass). */
  readonly stale?: number;
  readonly counts: {
    readonly placed: number;
    readonly removed: number;
    readonly updated: number;
    readonly unscheduledWritten: number;
    readonly unscheduledCleared: number;
  };
}

/** What {@link commitWork} did. */
export interface CommitResult {
  /** Ops whose condition held and that took effect. */
  readonly applied: number;
  /** Ops whose condition failed (the leader's view was stale); the next pass re-decides. */
  readonly failed: number;
  readonly transactions: number;
  /** True when `second` was skipped because an op of `first` failed. */
  readonly skippedSecond: boolean;
  /** Highest revision that wrote under placements/ (0n when none), for read-your-writes. */
  readonly placementsRevision: bigint;
  /** Highest revision that wrote under unscheduled/ (0n when none). */
  readonly unscheduledRevision: bigint;
}

/**
 * Transactions of one phase in flight at once. The ops of a phase are independent of each
 * other (each has its own condition), so their order does not matter; several in flight keep
 * etcd busy instead of waiting a round trip per 128 ops.
 */
export const COMMIT_IN_FLIGHT = 16;

/**
 * Decides the writes that turn `plan` into etcd state. Pure. `epoch` is the term's fence
 * revision. `staleAfter`: see {@link decideWorkSteps}.
 */
export function decideWork(
  keys: Keys,
  view: ClusterView,
  plan: Plan,
  epoch: bigint,
  staleAfter?: bigint,
): CommitWork {
  return runToEnd(decideWorkSteps(keys, view, plan, epoch, staleAfter));
}

/**
 * {@link decideWork} as steps, a checkpoint every {@link CHEAP_ITEMS} placements. The view's
 * placement and unscheduled maps are the mirror's own, live (a copy of 100,000 entries per
 * pass would cost what slicing saves): with `staleAfter` (the view's revision, for a pass run
 * in slices) a placement written after it is one the plan never saw, so no decision about it
 * is written; the pass reports it in `stale` and the next pass decides again. Every write is
 * also conditioned on the mod revision read here, so etcd refuses what changed since.
 */
export function* decideWorkSteps(
  keys: Keys,
  view: ClusterView,
  plan: Plan,
  epoch: bigint,
  staleAfter?: bigint,
): Steps<CommitWork> {
  const first: BatchOp[] = [];
  const second: BatchOp[] = [];
  const removing = new Set<string>();
  const fresh = (entry: CacheEntry<Placement>): boolean =>
    staleAfter === undefined || entry.modRevision <= staleAfter;
  let stale = 0;
  let n = 0;
  for (const d of plan.unplace) {
    if (++n % CHEAP_ITEMS === 0) yield;
    const entry = view.placements.get(d.unit)?.get(d.machine);
    if (entry === undefined) continue;
    if (!fresh(entry)) {
      stale += 1;
      continue;
    }
    removing.add(pair(d.unit, d.machine));
    first.push({ type: 'delete', key: entry.key, condition: { modRevision: entry.modRevision } });
  }
  let updated = 0;
  // Ports picked again for a placement that stays: written with any hash or state change of
  // the same placement, in one put, so its agent never sees the new file with the old ports.
  const repicked = new Map<string, PortChange>();
  for (const c of plan.portChanges) repicked.set(pair(c.unit, c.machine), c);
  for (const [unit, byMachine] of view.placements) {
    if (++n % CHEAP_ITEMS === 0) yield;
    const active = view.active.get(unit);
    if (active === undefined) continue;
    for (const [machine, entry] of byMachine) {
      // Written after the view: the next pass compares it with the unit it then sees.
      if (removing.has(pair(unit, machine)) || !fresh(entry)) continue;
      const value = entry.value;
      const ports = repicked.get(pair(unit, machine))?.ports;
      if (
        value.hash === active.hash &&
        value.desiredState === active.desired &&
        ports === undefined
      )
        continue;
      const next: Placement = {
        ...value,
        unit,
        machine,
        hash: active.hash,
        desiredState: active.desired,
        epoch,
        ...(ports !== undefined ? { ports: ports.map((p) => ({ ...p })) } : {}),
      };
      first.push(
        putOp(entry.key, codecs.placement.encode(next), { modRevision: entry.modRevision }),
      );
      updated += 1;
    }
  }
  for (const d of plan.place) {
    if (++n % CHEAP_ITEMS === 0) yield;
    const active = view.active.get(d.unit);
    if (active === undefined) continue;
    const value: Placement = {
      unit: d.unit,
      machine: d.machine,
      hash: active.hash,
      epoch,
      desiredState: active.desired,
      ports: (d.ports ?? []).map((p) => ({ ...p })),
    };
    second.push(
      putOp(keys.placement(d.machine, d.unit), codecs.placement.encode(value), { absent: true }),
    );
  }
  const wanted = yield* wantedUnscheduledSteps(view, plan, epoch);
  let unscheduledWritten = 0;
  for (const [name, record] of wanted) {
    if (++n % CHEAP_ITEMS === 0) yield;
    const existing = view.unscheduled.get(name);
    if (existing !== undefined && sameReasons(existing.value, record)) continue;
    const json = codecs.unscheduled.encode(record);
    const condition =
      existing === undefined ? { absent: true as const } : { modRevision: existing.modRevision };
    second.push(putOp(keys.unscheduled(name), json, condition));
    unscheduledWritten += 1;
  }
  let unscheduledCleared = 0;
  for (const [name, entry] of view.unscheduled) {
    if (wanted.has(name)) continue;
    second.push({ type: 'delete', key: entry.key, condition: { modRevision: entry.modRevision } });
    unscheduledCleared += 1;
  }
  return {
    first,
    second,
    ...(stale > 0 ? { stale } : {}),
    counts: {
      placed: plan.place.length,
      removed: removing.size,
      updated,
      unscheduledWritten,
      unscheduledCleared,
    },
  };
}

/** The indexes a sweep reads: the mirror's units, placements and pending reasons. */
export interface SweepIndexes {
  readonly units: { has(name: string): boolean };
  readonly placements: ReadonlyMap<string, ReadonlyMap<string, CacheEntry<Placement>>>;
  readonly unscheduled: ReadonlyMap<string, CacheEntry<Unscheduled>>;
}

/**
 * A sweep's writes: the placements and pending reasons of units whose records are gone
 * (`vanished`; one submitted again since keeps its own), each deleted only if unchanged. All
 * in `first`: a sweep places nothing. Pure, and O(the vanished units' placements).
 */
export function decideSweep(indexes: SweepIndexes, vanished: readonly string[]): CommitWork {
  const first: BatchOp[] = [];
  let removed = 0;
  let unscheduledCleared = 0;
  for (const name of vanished) {
    if (indexes.units.has(name)) continue;
    for (const entry of indexes.placements.get(name)?.values() ?? []) {
      first.push({ type: 'delete', key: entry.key, condition: { modRevision: entry.modRevision } });
      removed += 1;
    }
    const pending = indexes.unscheduled.get(name);
    if (pending !== undefined) {
      first.push({
        type: 'delete',
        key: pending.key,
        condition: { modRevision: pending.modRevision },
      });
      unscheduledCleared += 1;
    }
  }
  return {
    first,
    second: [],
    counts: { placed: 0, removed, updated: 0, unscheduledWritten: 0, unscheduledCleared },
  };
}

/**
 * Applies `work` under `term`: `first` in fenced transactions, then `second` if every op of
 * `first` applied. Checks the term's signal before every transaction and throws
 * SchedulerError `deposed` once it fired; a refused fence is store's FencedError. Either way
 * what was committed before stays (every op was valid for the term that wrote it).
 */
export async function commitWork(
  store: Store,
  term: Term,
  work: CommitWork,
  pacing: Pick<FencedTxnOptions, 'window' | 'keepUp'> = {},
): Promise<CommitResult> {
  const totals = {
    applied: 0,
    failed: 0,
    transactions: 0,
    placementsRevision: 0n,
    unscheduledRevision: 0n,
  };
  await applyPhase(store, term, work.first, totals, pacing);
  const skippedSecond = totals.failed > 0 && work.second.length > 0;
  if (!skippedSecond) await applyPhase(store, term, work.second, totals, pacing);
  return { ...totals, skippedSecond };
}

interface Totals {
  applied: number;
  failed: number;
  transactions: number;
  placementsRevision: bigint;
  unscheduledRevision: bigint;
}

async function applyPhase(
  store: Store,
  term: Term,
  ops: readonly BatchOp[],
  totals: Totals,
  pacing: Pick<FencedTxnOptions, 'window' | 'keepUp'>,
): Promise<void> {
  if (ops.length === 0) return;
  if (term.signal.aborted) {
    throw new SchedulerError('deposed', `term ${term.fence.revision} ended; commit abandoned`, {
      cause: term.signal.reason,
    });
  }
  const placements = store.keys.dir('placement');
  const unscheduled = store.keys.dir('unscheduled');
  // Paced by etcd's latency when the engine gives a window; else a fixed number in flight.
  const res = await fencedTxn(store, term.fence, ops, {
    inFlight: COMMIT_IN_FLIGHT,
    ...pacing,
  });
  totals.transactions += res.transactions;
  res.applied.forEach((ok, i) => {
    const op = ops[i];
    if (op === undefined) return;
    if (!ok) {
      totals.failed += 1;
      return;
    }
    totals.applied += 1;
    // The highest revision of the phase covers every op of it, whichever transaction held it.
    if (op.key.startsWith(placements)) totals.placementsRevision = res.revision;
    if (op.key.startsWith(unscheduled)) totals.unscheduledRevision = res.revision;
  });
}

function putOp(key: string, value: string, condition: BatchOp['condition']): BatchOp {
  return condition === undefined
    ? { type: 'put', key, value: Buffer.from(value) }
    : { type: 'put', key, value: Buffer.from(value), condition };
}

function pair(unit: string, machine: string): string {
  return `${unit}\u0000${machine}`;
}

/**
 * Capacity: how many of a list of units can be placed, in the list's order, on the cluster as
 * it is, before the first that fits nowhere. Admission (scheduler/api/admission.ts) asks it
 * whether a scale or a start fits before anything is written.
 *
 * The snapshot's placements are loaded as a pass would load them (placements of units absent
 * from the snapshot's units are dropped, so what is about to stop frees its room); then each
 * unit of `order` is placed on its best-ranked feasible machine, with the pass's own ranking
 * and feasibility chain, so later ones see the earlier ones (MaxPerMachine, resources,
 * conflicts). Nothing already placed is moved or rechecked: the question is what fits now,
 * not where the leader would rebalance to. It stops at the first unit that fits nowhere: for
 * instances of one template, which place alike, the rest would fail too, so a request for a
 * million costs what the cluster can hold plus one.
 *
 * @example
 *   const { placeable, blocked } = placeInOrder(snapshot, ['api@7.service', 'api@8.service']);
 *   // placeable: 1 when api@8 fits nowhere once api@7 is placed
 *   // blocked?.summary: "0/3 machines: 3 already run 2 instances of api@.service (MaxPerMachine=2)"
 */
import { explainUnscheduled, isFeasible } from './chain.js';
import { compileUnitsSteps, type CompiledUnit } from './compile.js';
import { PlanContext } from './context.js';
import { selectMachine } from './place.js';
import { loadPlacements } from './reconcile.js';
import { CHEAP_ITEMS, runToEnd, type Steps } from './steps.js';
import { ClusterState } from './state.js';
import type { Snapshot, Unscheduled } from './types.js';

/** What {@link placeInOrder} found. */
export interface Capacity {
  /** Units of `order` (not optional) that are or can be placed, before the first that cannot. */
  readonly placeable: number;
  /** Those units, in the order they were placed. */
  readonly placed: readonly string[];
  /** The first unit of `order` (not optional) that fits nowhere, and why; absent when all fit. */
  readonly blocked?: Unscheduled;
}

/**
 * Places the units named in `order` (each must be one of `snapshot.units`) one after the
 * other, MachineOf peers before their followers (otherwise in the given order), and stops at
 * the first that fits nowhere. A unit already placed counts as placeable. A Global unit
 * counts when at least one machine takes it. Units in `optional` are placed when they fit
 * and skipped when they do not, without ending the walk or being counted: what a request
 * activates besides the units in question (a peer its instances follow). Pure, like `plan`.
 */
export function placeInOrder(
  snapshot: Snapshot,
  order: readonly string[],
  optional: ReadonlySet<string> = new Set(),
): Capacity {
  return runToEnd(placeInOrderSteps(snapshot, order, optional));
}

/**
 * {@link placeInOrder} as steps (steps.ts), for a caller that must not hold its thread for
 * the whole walk: a scale's look at what fits places up to its count, 100,000 units and more.
 */
export function* placeInOrderSteps(
  snapshot: Snapshot,
  order: readonly string[],
  optional: ReadonlySet<string> = new Set(),
): Steps<Capacity> {
  const units = yield* compileUnitsSteps(snapshot.units);
  const state = new ClusterState(snapshot.machines, units.sorted.length);
  for (const u of units.sorted) {
    if (u.spreadBy !== '' && u.template !== '') state.trackSpread(u.template, u.spreadBy);
  }
  // An unlimited move budget: Replaces= may displace as the leader's placing would (the budget
  // paces moves over time; it does not bound what fits).
  const ctx = new PlanContext(state, units, snapshot.placements, Number.POSITIVE_INFINITY);
  state.beginLoading();
  yield* loadPlacements(ctx, snapshot.placements, snapshot.ports);
  yield* state.endLoading();
  ctx.mode = 'place';
  const walk: { name: string; i: number; u: CompiledUnit | undefined }[] = [];
  let followers = false;
  for (const [i, name] of order.entries()) {
    const u = units.byName.get(name);
    followers ||= (u?.depth ?? 0) > 0;
    walk.push({ name, i, u });
    if (i % CHEAP_ITEMS === CHEAP_ITEMS - 1) yield;
  }
  // Stable: peers first by MachineOf depth, the given order within a depth (a scale's 100,000
  // instances, none a follower, are in order already).
  if (followers) walk.sort((a, b) => (a.u?.depth ?? 0) - (b.u?.depth ?? 0) || a.i - b.i);
  const placed: string[] = [];
  for (const { name, u } of walk) {
    const ok = u !== undefined && (state.placementCount(u) > 0 || placeOne(ctx, u));
    yield; // placing may scan every machine: a checkpoint after each unit
    if (optional.has(name)) continue;
    if (!ok) {
      const blocked =
        u === undefined ? notInSnapshot(name, state.size) : explainUnscheduled(ctx, u).unscheduled;
      return { placeable: placed.length, placed, blocked };
    }
    placed.push(name);
  }
  return { placeable: placed.length, placed };
}

/** Places `u` (a Global unit on every machine that takes it); false when none does. */
function placeOne(ctx: PlanContext, u: CompiledUnit): boolean {
  if (u.invalid !== '') return false;
  if (!u.global) {
    const s = selectMachine(ctx, u);
    if (s === undefined) return false;
    ctx.place(u, s, ctx.probe.displaced);
    return true;
  }
  let any = false;
  for (const s of ctx.state.slots) {
    if (!s.has(u.name) && isFeasible(ctx, u, s, ctx.probe)) {
      ctx.place(u, s, ctx.probe.displaced);
      any = true;
    }
  }
  return any;
}

/** A name the caller did not give as a unit: it cannot be placed (a caller's mistake). */
function notInSnapshot(name: string, machines: number): Unscheduled {
  const reason = 'cannot take a unit that is not active in the snapshot';
  return {
    unit: name,
    machines,
    reasons: machines === 0 ? [] : [{ reason, machines }],
    summary:
      machines === 0
        ? '0/0 machines: there are no machines'
        : `0/${machines} machines: ${machines} ${reason}`,
  };
}

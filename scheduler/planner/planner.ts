/**
 * The planner: a pure function from a cluster snapshot to placement decisions. No I/O, no
 * clock, no unseeded randomness, so any pass can be replayed, property-tested and benchmarked.
 *
 * @example
 *   const p = plan({ machines, units, placements }, { maxMoves: 50 });
 *   // one fenced transaction: delete p.unplace, create p.place; publish p.unscheduled
 *   const next = applyPlan(placements, p); // what the cluster looks like afterwards
 */
import { explainUnscheduled } from './chain.js';
import { compareNames, compileUnitsSteps, placementSignature } from './compile.js';
import { PlanContext } from './context.js';
import { placeAll } from './place.js';
import { loadPlacements, moveLost, recheckPlacements } from './reconcile.js';
import { ClusterState, type MachineSlot } from './state.js';
import { CHEAP_ITEMS, runToEnd, type Steps } from './steps.js';
import {
  fillPlanOptions,
  type Displacement,
  type PlaceDecision,
  type Plan,
  type PlannedPort,
  type PlanOptions,
  type PortChange,
  type Snapshot,
  type UnplaceDecision,
  type Unscheduled,
} from './types.js';

/**
 * Decide one pass. Deterministic: the same snapshot and options give the same plan, entry for
 * entry. Guarantees, whatever the input:
 * - no placement it leaves or makes violates a checker of the chain (except `deferred` ones,
 *   kept because the move budget ran out, and placements of invalid units, never touched);
 * - a non-global unit ends with at most one placement;
 * - at most `maxMoves` already-placed units are stopped or moved (followers ride free);
 * - a feasible placement is never moved to rebalance;
 * - applying the plan and planning again yields no place/unplace work, when nothing was
 *   deferred.
 */
export function plan(snapshot: Snapshot, options: PlanOptions = {}): Plan {
  return runToEnd(planSteps(snapshot, options));
}

/**
 * {@link plan} as steps: yields at bounded checkpoints in every loop over units, placements or
 * machines, and returns the same plan, entry for entry. The leader runs it in slices of time
 * (lib/sliced.ts). `snapshot` must not change until the steps are done.
 */
export function* planSteps(snapshot: Snapshot, options: PlanOptions = {}): Steps<Plan> {
  const opts = fillPlanOptions(options);
  const units = yield* compileUnitsSteps(snapshot.units);
  const state = new ClusterState(snapshot.machines, units.sorted.length);
  yield;
  let n = 0;
  for (const u of units.sorted) {
    if (u.spreadBy !== '' && u.template !== '') state.trackSpread(u.template, u.spreadBy);
    if (++n % CHEAP_ITEMS === 0) yield;
  }
  const ctx = new PlanContext(state, units, snapshot.placements, opts.maxMoves);
  state.beginLoading();
  const lost = yield* loadPlacements(ctx, snapshot.placements, snapshot.ports);
  yield* state.endLoading();
  moveLost(ctx, lost);
  yield;
  yield* recheckPlacements(ctx);
  yield* placeAll(ctx);
  return yield* finish(ctx);
}

/** Turn the pass's log into net decisions against the snapshot, and explain the misses. */
function* finish(ctx: PlanContext): Steps<Plan> {
  const place: PlaceDecision[] = [];
  // A unit evicted in this pass may have been placed on the same machine twice; only units
  // evicted while placing can repeat, so only they pay for the duplicate check.
  const seen = new Set<string>();
  let n = 0;
  for (const r of ctx.placed) {
    if (++n % CHEAP_ITEMS === 0) yield;
    if (!r.slot.has(r.unit.name) || ctx.isInitial(r.unit.name, r.slot.id)) continue;
    if (ctx.evictedWhilePlacing.has(r.unit.name)) {
      const key = `${r.unit.name}\u0000${r.slot.id}`;
      if (seen.has(key)) continue;
      seen.add(key);
    }
    const displaces =
      r.displaces.length === 0
        ? r.displaces
        : r.displaces.filter((e) => ctx.isInitial(e, r.slot.id) && !ctx.endsOn(e, r.slot.id));
    const ports = r.slot.ports.of(r.unit.name);
    place.push({
      unit: r.unit.name,
      machine: r.slot.id,
      displaces,
      ...(ports !== undefined && ports.length > 0 ? { ports } : {}),
    });
  }
  const portChanges: PortChange[] = [];
  for (const key of ctx.state.portChanges) {
    if (++n % CHEAP_ITEMS === 0) yield;
    const [unit = '', machine = ''] = key.split('\u0000');
    const s = ctx.state.byId.get(machine);
    if (s === undefined || !s.has(unit)) continue;
    portChanges.push({ unit, machine, ports: portsOf(s, unit) });
  }
  const unplace: UnplaceDecision[] = [];
  for (const d of ctx.removed.values()) {
    if (++n % CHEAP_ITEMS === 0) yield;
    if (!ctx.endsOn(d.unit, d.machine)) unplace.push(d);
  }
  const displaced: Displacement[] = ctx.displaced.filter(
    (d) => ctx.isInitial(d.unit, d.machine) && !ctx.endsOn(d.unit, d.machine),
  );
  const unscheduled = new Map<string, Unscheduled>();
  // A full cluster can leave thousands of look-alike units unplaced: explain each signature
  // once, unless a name-dependent checker took part in the explanation.
  const explained = new Map<string, Unscheduled>();
  for (const u of ctx.units.sorted) {
    if (++n % CHEAP_ITEMS === 0) yield;
    if (ctx.state.placementCount(u) > 0 || (ctx.pinned.has(u.name) && !u.global)) continue;
    const sig = `${u.global ? 'g' : 'u'}\u0000${placementSignature(u)}`;
    const hit = explained.get(sig);
    if (hit !== undefined) {
      unscheduled.set(u.name, { ...hit, unit: u.name });
      continue;
    }
    // An explanation may judge every machine: a checkpoint after each.
    const e = explainUnscheduled(ctx, u);
    if (!e.byName) explained.set(sig, e.unscheduled);
    unscheduled.set(u.name, e.unscheduled);
    yield;
  }
  return {
    place,
    unplace,
    unscheduled,
    displaced,
    deferred: ctx.deferred,
    portChanges,
    moves: ctx.moves,
    machines: ctx.state.size,
  };
}

const NO_PORTS: readonly PlannedPort[] = [];

function portsOf(s: MachineSlot, unit: string): readonly PlannedPort[] {
  return s.ports.of(unit) ?? NO_PORTS;
}

/**
 * `placements` with `plan.unplace` removed and `plan.place` added. Machine lists come out
 * sorted; units left with no placement are absent. Pure: the input map is not modified.
 */
export function applyPlan(
  placements: ReadonlyMap<string, readonly string[]>,
  plan: Plan,
): Map<string, string[]> {
  const out = new Map<string, Set<string>>();
  for (const [unit, machines] of placements) out.set(unit, new Set(machines));
  for (const d of plan.unplace) out.get(d.unit)?.delete(d.machine);
  for (const d of plan.place) {
    let set = out.get(d.unit);
    if (set === undefined) out.set(d.unit, (set = new Set()));
    set.add(d.machine);
  }
  const result = new Map<string, string[]>();
  for (const [unit, set] of out) {
    if (set.size > 0) result.set(unit, [...set].sort(compareNames));
  }
  return result;
}

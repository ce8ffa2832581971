/**
 * The level-triggered half of a pass: compare existing placements with what the snapshot
 * wants and decide what must stop or move, before anything new is placed.
 *
 * 1. load: placements of inactive or destroyed units are unplaced (with their MachineOf
 *    followers); a non-global unit placed twice keeps one placement; the rest enter the state.
 * 2. lost: placements on machines missing from the snapshot move, within the budget.
 * 3. recheck: every remaining placement is checked against the chain with itself taken out;
 *    an infeasible one moves, within the budget. A feasible one never moves (no rebalancing).
 */
import { aboutOneMachine, firstRejection, isFeasible, whyOf } from './chain.js';
import { compareNames, type CompiledUnit } from './compile.js';
import type { PlanContext } from './context.js';
import type { MachineSlot } from './state.js';
import type { PlannedPort, UnplaceWhy } from './types.js';
import { CHEAP_ITEMS, sortedSteps, type Steps } from './steps.js';

/** A snapshot placement on a machine that is no longer in the snapshot. */
export interface LostPlacement {
  readonly unit: CompiledUnit;
  readonly machine: string;
}

/**
 * Step 1, as steps (a checkpoint every {@link CHEAP_ITEMS} units). Returns the placements on
 * lost machines, for {@link moveLost}.
 */
export function* loadPlacements(
  ctx: PlanContext,
  placements: ReadonlyMap<string, readonly string[]>,
  ports?: ReadonlyMap<string, ReadonlyMap<string, readonly PlannedPort[]>>,
): Steps<LostPlacement[]> {
  const { state, units } = ctx;
  const lost: LostPlacement[] = [];
  const gone: [string, MachineSlot][] = [];
  // Placements of inactive units first; only they need sorting (by UTF-16 code units, exactly
  // like compareNames), in steps: a scale from 100,000 down to 10,000 leaves 90,000.
  const found: string[] = [];
  let n = 0;
  for (const name of placements.keys()) {
    if (!units.byName.has(name)) found.push(name);
    if (++n % CHEAP_ITEMS === 0) yield;
  }
  const inactive = yield* sortedSteps(found);
  for (const name of inactive) {
    if (++n % CHEAP_ITEMS === 0) yield;
    for (const id of distinctSorted(placements.get(name) ?? [])) {
      ctx.recordRemoval(name, id, 'inactive', 'the unit is inactive or destroyed');
      const s = state.byId.get(id);
      if (s !== undefined) gone.push([name, s]);
    }
  }
  for (const u of units.sorted) {
    if (++n % CHEAP_ITEMS === 0) yield;
    const listed = placements.get(u.name);
    if (listed === undefined || listed.length === 0) continue;
    let keep = distinctSorted(listed);
    if (!u.global && keep.length > 1) {
      const ids = keep;
      const first = ids.find((id) => state.byId.has(id)) ?? (ids[0] as string);
      keep = [first];
      for (const id of ids) {
        if (id !== first) ctx.recordRemoval(u.name, id, 'duplicate', `also placed on ${first}`);
      }
    }
    for (const id of keep) {
      const s = state.byId.get(id);
      if (s !== undefined) state.add(u, s, ports?.get(u.name)?.get(id));
      else lost.push({ unit: u, machine: id });
    }
  }
  // After everything is loaded, so followers listed after their peer are found too.
  for (const [name, s] of gone) {
    ctx.cascade(name, s);
    if (++n % CHEAP_ITEMS === 0) yield;
  }
  return lost;
}

function distinctSorted(ids: readonly string[]): readonly string[] {
  return ids.length === 1 ? ids : [...new Set(ids)].sort();
}

/**
 * Step 2. Peers before followers: a follower on the same lost machine travels with its peer
 * (free), or waits with it when the budget has run out.
 */
export function moveLost(ctx: PlanContext, lost: readonly LostPlacement[]): void {
  const key = (unit: string, machine: string): string => `${unit}\u0000${machine}`;
  const onLost = new Set(lost.map((p) => key(p.unit.name, p.machine)));
  const done = new Set<string>();
  const sorted = [...lost].sort(
    (a, b) =>
      compareNames(a.machine, b.machine) ||
      a.unit.depth - b.unit.depth ||
      compareNames(a.unit.name, b.unit.name),
  );
  const settle = (unit: string, machine: string, move: boolean, why: UnplaceWhy): void => {
    done.add(key(unit, machine));
    const detail = `machine ${machine} is lost`;
    if (move) ctx.recordRemoval(unit, machine, why, detail);
    else {
      ctx.deferred.push({ unit, machine, why, detail });
      ctx.pinned.add(unit);
    }
    for (const f of ctx.units.followers.get(unit) ?? []) {
      const k = key(f.name, machine);
      if (onLost.has(k) && !done.has(k)) settle(f.name, machine, move, 'peer-moved');
    }
  };
  for (const p of sorted) {
    if (done.has(key(p.unit.name, p.machine))) continue;
    settle(p.unit.name, p.machine, ctx.spendMove(), 'machine-lost');
  }
}

/**
 * Step 3, as steps (a checkpoint after each machine). Machines in id order; on each, peers
 * before followers, then by name.
 */
export function* recheckPlacements(ctx: PlanContext): Steps<void> {
  const { state } = ctx;
  ctx.mode = 'recheck';
  for (const s of state.slots) {
    if (s.units.length === 0) continue;
    yield;
    const here = [...s.units].sort((a, b) => a.depth - b.depth);
    for (const u of here) {
      if (u.invalid !== '' || !s.has(u.name)) continue;
      const held = s.ports.of(u.name);
      state.remove(u, s);
      const rejection = isFeasible(ctx, u, s, ctx.probe) ? undefined : firstRejection(ctx, u, s);
      state.add(u, s, held);
      if (rejection === undefined) continue;
      const why = whyOf(rejection.checker);
      const detail = aboutOneMachine(rejection.reason);
      if (ctx.spendMove()) ctx.evict(u, s, why, detail);
      else ctx.deferred.push({ unit: u.name, machine: s.id, why, detail });
    }
  }
}

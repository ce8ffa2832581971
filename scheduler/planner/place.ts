/**
 * The placing half of a pass: Global units on every machine that takes them, then every
 * other unit without a placement, each on the best-ranked feasible machine.
 *
 * Ranking, best first:
 * 1. SpreadBy=key: machines whose value of `key` has the fewest instances of the unit's
 *    template (machines without the key last). Spread ranks before load on purpose: a unit
 *    that asks to be spread gets spread (docs/architecture.md, "SpreadBy ranks first").
 * 2. Fewest placed units (fleet's least-loaded).
 * 3. Machine id.
 * The ranker walks machines in that order and stops at the first feasible one; masks for
 * the drained flag and MachineMetadata skip machines those checkers would reject anyway.
 */
import { findInBits } from './bitset.js';
import { isFeasible, judgesByName, rejectingChecker } from './chain.js';
import { compareNames, placementSignature, type CompiledUnit } from './compile.js';
import type { PlanContext } from './context.js';
import type { MachineSlot } from './state.js';
import { CHEAP_ITEMS, type Steps } from './steps.js';

/**
 * Rounds re-try units that failed when a round displaced something (Replaces=), which may
 * have made room; bounded so a pathological cluster cannot stall the leader.
 */
const MAX_ROUNDS = 8;

/**
 * Place what needs placing, as steps (a checkpoint after each unit tried and each Global
 * unit); units that fit nowhere stay unplaced (the caller explains).
 */
export function* placeAll(ctx: PlanContext): Steps<void> {
  const { state, units } = ctx;
  ctx.mode = 'place';
  ctx.requeued.length = 0;
  // A Global unit waiting on a lost machine (pinned) still belongs on every other machine.
  const globals: CompiledUnit[] = [];
  const waiting: CompiledUnit[] = [];
  let n = 0;
  for (const u of units.sorted) {
    if (++n % CHEAP_ITEMS === 0) yield;
    if (u.invalid !== '') continue;
    if (u.global) globals.push(u);
    else if (!ctx.pinned.has(u.name) && state.placementCount(u) === 0) waiting.push(u);
  }
  let queue = peersFirst(waiting);
  yield;
  for (let round = 1; ; round++) {
    const before = state.removals;
    for (const g of globals) {
      placeGlobal(ctx, g);
      yield;
    }
    const failed: CompiledUnit[] = [];
    // signature -> state.removals when a unit with it failed without any name-dependent
    // rejection: while nothing has been removed since, its look-alikes fail too.
    const hopeless = new Map<string, number>();
    for (let i = 0; ;) {
      for (const u of ctx.requeued) queue.push(u);
      ctx.requeued.length = 0;
      const u = queue[i++];
      if (u === undefined) break;
      // Skipped and hopeless units cost little each, but 100,000 of them add up.
      if (++n % CHEAP_ITEMS === 0) yield;
      if (state.placementCount(u) > 0 || ctx.pinned.has(u.name)) continue;
      if (hopeless.size > 0 && hopeless.get(placementSignature(u)) === state.removals) {
        failed.push(u);
        continue;
      }
      const s = selectMachine(ctx, u);
      if (s !== undefined) ctx.place(u, s, ctx.probe.displaced);
      else {
        failed.push(u);
        if (!ctx.sawByName) hopeless.set(placementSignature(u), state.removals);
      }
      yield;
    }
    // Nothing displaced this round: nothing can have made room, for units or Globals.
    if (state.removals === before || round >= MAX_ROUNDS) return;
    queue = peersFirst(failed.sort((a, b) => compareNames(a.name, b.name)));
  }
}

/** One instance on every machine that passes the chain and lacks one, in id order. */
function placeGlobal(ctx: PlanContext, g: CompiledUnit): void {
  const { state } = ctx;
  const tryOn = (idx: number): boolean => {
    const s = state.slots[idx] as MachineSlot;
    if (!s.has(g.name) && isFeasible(ctx, g, s, ctx.probe)) ctx.place(g, s, ctx.probe.displaced);
    return false;
  };
  const explicit = explicitCandidates(ctx, g);
  if (explicit !== undefined) for (const idx of explicit) tryOn(idx);
  else findInBits(state.staticMask(g), null, tryOn);
}

/**
 * The best-ranked feasible machine for `u` (ctx.probe then holds what it displaces).
 * Sets ctx.sawByName when a name-dependent checker rejected a machine on the way.
 */
export function selectMachine(ctx: PlanContext, u: CompiledUnit): MachineSlot | undefined {
  const { state } = ctx;
  // A MachineOf follower's candidates are its peers' machines, which grow as peers get
  // placed: its failures are never reused.
  ctx.sawByName = u.machineOf.length > 0;
  const visit = (idx: number): boolean => {
    const r = rejectingChecker(ctx, u, state.slots[idx] as MachineSlot, ctx.probe);
    if (r >= 0 && judgesByName(r)) ctx.sawByName = true;
    return r < 0;
  };
  const spread =
    u.spreadBy !== '' && u.template !== '' ? state.spreadIndex(u.template, u.spreadBy) : undefined;
  const explicit = explicitCandidates(ctx, u);
  if (explicit !== undefined) {
    const rank = (idx: number): [number, number] => {
      const s = state.slots[idx] as MachineSlot;
      const level = spread?.levelOf(s.machine.metadata.get(u.spreadBy)) ?? 0;
      return [level, s.units.length];
    };
    const ranked = explicit
      .map((idx) => ({ idx, r: rank(idx) }))
      .sort((a, b) => a.r[0] - b.r[0] || a.r[1] - b.r[1] || a.idx - b.idx);
    for (const { idx } of ranked) if (visit(idx)) return state.slots[idx];
    return undefined;
  }
  const mask = state.staticMask(u);
  if (spread === undefined) {
    const idx = state.findLeastLoaded(mask, visit);
    return idx < 0 ? undefined : state.slots[idx];
  }
  for (const level of spread.rankLevels()) {
    const idx = state.findLeastLoaded(state.intersect(level, mask), visit);
    if (idx >= 0) return state.slots[idx];
  }
  return undefined;
}

/**
 * When MachineID= or MachineOf= pin a unit to a few machines, those machines (ascending);
 * otherwise undefined and the ranker walks the masks. The chain still checks every one.
 */
function explicitCandidates(ctx: PlanContext, u: CompiledUnit): readonly number[] | undefined {
  let out: readonly number[] | undefined;
  if (u.machineId !== '') {
    const targets = ctx.machineIdTargets(u);
    out = targets.length === 1 ? targets : [];
  }
  if (u.peers.length < u.machineOf.length) return []; // a peer is not even active
  for (const peer of u.peers) {
    const on = ctx.state.placementsOf(peer);
    out = out === undefined ? on : out.filter((idx) => on.includes(idx));
  }
  return out;
}

/** Name-sorted units in MachineOf depth order (peers first), by name within a depth; may reuse `list`. */
function peersFirst(list: CompiledUnit[]): CompiledUnit[] {
  // Without MachineOf every depth is 0: the list is in order already (no copy of 100,000).
  if (list.every((u) => u.depth === 0)) return list;
  const byDepth: CompiledUnit[][] = [];
  for (const u of list) {
    const bucket = byDepth[u.depth];
    if (bucket === undefined) byDepth[u.depth] = [u];
    else bucket.push(u);
  }
  return byDepth.flatMap((b) => b ?? []);
}

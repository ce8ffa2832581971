/**
 * One pass's mutable bookkeeping around the cluster state: the move budget, the log of
 * decisions, and the two operations every phase uses, {@link PlanContext.place} and
 * {@link PlanContext.evict}. Evicting a unit takes its MachineOf followers with it and queues
 * both to be placed again, so a follower is never left behind without its peer.
 */
import { Probe, type CheckContext } from './checker.js';
import type { CompiledUnit, CompiledUnits } from './compile.js';
import type { ClusterState, MachineSlot } from './state.js';
import type { DeferredMove, Displacement, UnplaceDecision, UnplaceWhy } from './types.js';

interface PlaceRecord {
  readonly unit: CompiledUnit;
  readonly slot: MachineSlot;
  readonly displaces: readonly string[];
}

const NONE: readonly string[] = [];

export class PlanContext implements CheckContext {
  mode: 'place' | 'recheck' = 'recheck';
  /** Set by selectMachine: a name-dependent checker rejected some machine for the unit. */
  sawByName = false;
  /** Budget spent: initial placements stopped or moved. */
  moves = 0;
  /** Shared scratch for the hot path. */
  readonly probe = new Probe();
  /** Removals of snapshot placements, first reason wins, in decision order. */
  readonly removed = new Map<string, UnplaceDecision>();
  readonly placed: PlaceRecord[] = [];
  readonly displaced: Displacement[] = [];
  readonly deferred: DeferredMove[] = [];
  /** Units that keep a placement the state cannot hold (on a lost machine, deferred). */
  readonly pinned = new Set<string>();
  /** Non-global units evicted while placing: the placement loop appends them to its queue. */
  readonly requeued: CompiledUnit[] = [];
  private readonly idTargets = new Map<string, readonly number[]>();
  /** Non-global units (by name) and Global instances (name + machine) displaced so far. */
  private readonly displacedNames = new Set<string>();
  /** Units evicted after placing began (they may be placed more than once in the log). */
  readonly evictedWhilePlacing = new Set<string>();

  constructor(
    readonly state: ClusterState,
    readonly units: CompiledUnits,
    private readonly initial: ReadonlyMap<string, readonly string[]>,
    private readonly maxMoves: number,
  ) {}

  canDisplace(units: readonly CompiledUnit[], s: MachineSlot): boolean {
    let cost = 0;
    for (const e of units) {
      if (this.displacedNames.has(displacedKey(e, s))) return false;
      if (this.isInitial(e.name, s.id)) cost++;
    }
    return cost <= this.maxMoves - this.moves;
  }

  /** Take one move from the budget; false when none is left. */
  spendMove(): boolean {
    if (this.moves >= this.maxMoves) return false;
    this.moves++;
    return true;
  }

  isInitial(unit: string, machine: string): boolean {
    const list = this.initial.get(unit);
    return list !== undefined && list.includes(machine);
  }

  machineIdTargets(u: CompiledUnit): readonly number[] {
    let hit = this.idTargets.get(u.machineId);
    if (hit === undefined) {
      hit = this.state.matchMachineId(u.machineId);
      this.idTargets.set(u.machineId, hit);
    }
    return hit;
  }

  /**
   * Place `u` on `s`, first evicting what it displaces (Replaces=). Displacing a snapshot
   * placement spends a move; ReplacesChecker has already made sure the budget allows it.
   */
  place(u: CompiledUnit, s: MachineSlot, displaces: readonly CompiledUnit[]): void {
    for (const e of displaces) {
      if (this.isInitial(e.name, s.id)) this.spendMove();
      this.displaced.push({ unit: e.name, machine: s.id, by: u.name });
      this.displacedNames.add(displacedKey(e, s));
      this.evict(e, s, 'replaced', `replaced by ${u.name}`);
    }
    this.state.add(u, s);
    const names = displaces.length === 0 ? NONE : displaces.map((e) => e.name);
    this.placed.push({ unit: u, slot: s, displaces: names });
  }

  /**
   * Remove `u` from `s` (the caller has charged the budget if this is a move), queue it to be
   * placed again, and take its MachineOf followers on `s` along, free of charge.
   */
  evict(u: CompiledUnit, s: MachineSlot, why: UnplaceWhy, detail: string): void {
    if (!this.state.remove(u, s)) return;
    if (this.mode === 'place') this.evictedWhilePlacing.add(u.name);
    this.recordRemoval(u.name, s.id, why, detail);
    if (!u.global) this.requeued.push(u);
    this.cascade(u.name, s);
  }

  /** Evict the units on `s` that are MachineOf `peer`, which has just left `s`. */
  cascade(peer: string, s: MachineSlot): void {
    for (const f of this.units.followers.get(peer) ?? []) {
      if (s.has(f.name)) this.evict(f, s, 'peer-moved', `follows ${peer}, which left`);
    }
  }

  /** Note the removal of a snapshot placement (placements made in this pass need none). */
  recordRemoval(unit: string, machine: string, why: UnplaceWhy, detail: string): void {
    if (!this.isInitial(unit, machine)) return;
    const key = `${unit}\u0000${machine}`;
    if (!this.removed.has(key)) this.removed.set(key, { unit, machine, why, detail });
  }

  /** True when the pass ends with `unit` on live machine `machine`. */
  endsOn(unit: string, machine: string): boolean {
    return this.state.byId.get(machine)?.has(unit) ?? false;
  }
}

/** A non-global unit is displaced at most once per pass; a Global one once per machine. */
function displacedKey(u: CompiledUnit, s: MachineSlot): string {
  return u.global ? `${u.name}\u0000${s.id}` : u.name;
}

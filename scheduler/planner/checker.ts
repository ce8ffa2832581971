/**
 * The shape every feasibility checker has, and the scratch state they share while one
 * (unit, machine) pair is examined. Checkers are pure readers of the cluster state: the
 * planner alone applies decisions.
 */
import type { CompiledUnit } from './compile.js';
import type { ClusterState, MachineSlot } from './state.js';

/** What a checker may ask of the pass beyond the cluster state. */
export interface CheckContext {
  readonly state: ClusterState;
  /**
   * `place`: deciding where a unit goes (Replaces= may displace, within the move budget).
   * `recheck`: re-validating an existing placement, where displacing is not an action.
   */
  readonly mode: 'place' | 'recheck';
  /**
   * Whether a newcomer on `s` may displace `units`: displacing a snapshot placement is a move
   * and must fit the budget, and no unit is displaced twice in one pass (so Replaces chains
   * such as a->b->c->a cannot chase each other around the cluster).
   */
  canDisplace(units: readonly CompiledUnit[], s: MachineSlot): boolean;
  /** Machine indexes `u`'s MachineID names (one when it resolves; several when ambiguous). */
  machineIdTargets(u: CompiledUnit): readonly number[];
}

/**
 * Per-pair scratch: Replaces= decides what the newcomer would displace, and the checkers after
 * it credit the displaced units' reservations and template slots back to the machine.
 */
export class Probe {
  displaced: CompiledUnit[] = [];
  freedCpu = 0;
  freedMemory = 0;
  /** Displaced instances of the candidate's own template. */
  freedSameTemplate = 0;

  reset(): void {
    if (this.displaced.length > 0) this.displaced = [];
    this.freedCpu = 0;
    this.freedMemory = 0;
    this.freedSameTemplate = 0;
  }
}

/**
 * One hard constraint. `accepts` runs on the hot path and allocates nothing; `explain` runs
 * only for machines it rejected, when the pass reports why a unit is unscheduled, and returns
 * the checker's fixed reason shape (no free-capacity numbers, so counts do not split).
 */
export interface FeasibilityChecker {
  readonly name: string;
  /**
   * True when the verdict can depend on the unit's name, not only on its constraints and
   * reservation (peers and globs name units). The planner reuses a failure for units with
   * the same placement signature only while no such checker was involved.
   */
  readonly byName: boolean;
  accepts(ctx: CheckContext, u: CompiledUnit, s: MachineSlot, probe: Probe): boolean;
  explain(ctx: CheckContext, u: CompiledUnit, s: MachineSlot, probe: Probe): string;
}

/** `256 MiB`, `2 GiB`, `1536 bytes`: the largest binary unit that divides the amount. */
export function formatBytes(n: number): string {
  const units: readonly [number, string][] = [
    [1024 ** 4, 'TiB'],
    [1024 ** 3, 'GiB'],
    [1024 ** 2, 'MiB'],
    [1024, 'KiB'],
  ];
  for (const [size, name] of units) if (n >= size && n % size === 0) return `${n / size} ${name}`;
  return `${n} bytes`;
}

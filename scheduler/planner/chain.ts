/**
 * The feasibility chain, assembled here and nowhere else, and the reason accounting built on
 * it. A machine is feasible for a unit when every checker accepts it; a rejected machine is
 * counted under the FIRST checker that rejects it, and those counts are what users see.
 */
import { countedReason, singularReason } from '../../lib/reasons.js';
import { Probe, type CheckContext, type FeasibilityChecker } from './checker.js';
import {
  DrainedChecker,
  ImagesChecker,
  MachineIDChecker,
  MachineMetadataChecker,
  MaxPerMachineChecker,
  ResourcesChecker,
} from './checkers-machine.js';
import { ConflictsChecker, MachineOfChecker, ReplacesChecker } from './checkers-units.js';
import { PortsChecker } from './checker-ports.js';
import type { CompiledUnit } from './compile.js';
import type { MachineSlot } from './state.js';
import type { PlacementReason, UnplaceWhy, Unscheduled } from './types.js';

/**
 * Cheapest first, so a rejection usually costs a flag test. Ordering constraints:
 * - Drained first: a drained machine is reported as drained whatever else is true of it.
 * - Images next: a machine whose driver cannot run the unit's image at all says so before
 *   any constraint the file chose; O(1), and the ranker's masks already leave such machines out.
 * - MachineID and MachineMetadata before anything that looks at placed units: they are O(1)
 *   per machine and the ranker has already narrowed candidates with the same rules (masks).
 * - MachineOf before Conflicts: "lack peer X" explains a follower better than whatever
 *   conflicts happen to sit on machines its peer is not on.
 * - Conflicts before Replaces: as in fleet, a conflict rules a machine out even where the
 *   newcomer would have displaced units.
 * - Replaces before Resources and MaxPerMachine: it decides which units would be displaced,
 *   and those two credit the displaced units' reservations and template slots.
 * - Ports last: like Resources it credits displaced units (their ports), and it is the
 *   only checker that walks a unit's Port= lines, which most units do not have.
 */
export const FEASIBILITY_CHAIN: readonly FeasibilityChecker[] = [
  DrainedChecker,
  ImagesChecker,
  MachineIDChecker,
  MachineMetadataChecker,
  MachineOfChecker,
  ConflictsChecker,
  ReplacesChecker,
  ResourcesChecker,
  MaxPerMachineChecker,
  PortsChecker,
];

/**
 * Index in {@link FEASIBILITY_CHAIN} of the first checker rejecting `u` on `s`, or -1 when all
 * accept (`probe` then holds what `u` would displace). The hot path: allocates nothing.
 */
export function rejectingChecker(
  ctx: CheckContext,
  u: CompiledUnit,
  s: MachineSlot,
  probe: Probe,
): number {
  probe.reset();
  for (let i = 0; i < FEASIBILITY_CHAIN.length; i++) {
    if (!(FEASIBILITY_CHAIN[i] as FeasibilityChecker).accepts(ctx, u, s, probe)) return i;
  }
  return -1;
}

/** True when every checker accepts `u` on `s`; `probe` then holds what it would displace. */
export function isFeasible(
  ctx: CheckContext,
  u: CompiledUnit,
  s: MachineSlot,
  probe: Probe,
): boolean {
  return rejectingChecker(ctx, u, s, probe) < 0;
}

/** True when checker `index` of the chain may judge units by name (see `byName`). */
export function judgesByName(index: number): boolean {
  return FEASIBILITY_CHAIN[index]?.byName ?? true;
}

/** The first checker rejecting `u` on `s` and its reason, or undefined when feasible. */
export function firstRejection(
  ctx: CheckContext,
  u: CompiledUnit,
  s: MachineSlot,
  probe: Probe = new Probe(),
): { readonly checker: number; readonly reason: string } | undefined {
  probe.reset();
  for (let i = 0; i < FEASIBILITY_CHAIN.length; i++) {
    const checker = FEASIBILITY_CHAIN[i] as FeasibilityChecker;
    if (!checker.accepts(ctx, u, s, probe)) {
      return { checker: i, reason: checker.explain(ctx, u, s, probe) };
    }
  }
  return undefined;
}

/**
 * Why `u` fits nowhere: every machine through the chain, counted per first rejection.
 * `placedOn` is how many machines took it (non-zero only for a Global unit reported anyway).
 * `byName` tells whether a name-dependent checker was involved (see `FeasibilityChecker`).
 */
export function explainUnscheduled(
  ctx: CheckContext,
  u: CompiledUnit,
  placedOn = 0,
): { readonly unscheduled: Unscheduled; readonly byName: boolean } {
  const slots = ctx.state.slots;
  const tally = new Map<string, { checker: number; machines: number }>();
  const count = (checker: number, reason: string): void => {
    const t = tally.get(reason);
    if (t === undefined) tally.set(reason, { checker, machines: 1 });
    else t.machines++;
  };
  const probe = new Probe();
  let byName = false;
  for (const s of slots) {
    if (u.invalid !== '') count(-1, `cannot run an invalid unit (${u.invalid})`);
    else {
      const r = firstRejection(ctx, u, s, probe);
      if (r !== undefined) count(r.checker, r.reason);
      if (r !== undefined && judgesByName(r.checker)) byName = true;
    }
  }
  const reasons = [...tally.entries()]
    .sort(
      ([ra, a], [rb, b]) =>
        b.machines - a.machines || a.checker - b.checker || (ra < rb ? -1 : ra > rb ? 1 : 0),
    )
    .map(([reason, t]): PlacementReason => ({ reason, machines: t.machines }));
  const unscheduled: Unscheduled = {
    unit: u.name,
    machines: slots.length,
    reasons,
    summary: summarize(placedOn, slots.length, reasons),
  };
  return { unscheduled, byName };
}

/** `0/5 machines: 3 conflict with web@1.service, 2 lack region=us`. */
export function summarize(
  placedOn: number,
  machines: number,
  reasons: readonly PlacementReason[],
): string {
  if (machines === 0) return '0/0 machines: there are no machines';
  const parts = reasons.map((r) => countedReason(r.machines, r.reason));
  return `${placedOn}/${machines} machines${parts.length > 0 ? ': ' : ''}${parts.join(', ')}`;
}

/**
 * A reason (phrased for a count of machines) about one machine: `lack region=us` ->
 * `machine lacks region=us`; `already run 2 ...` -> `machine already runs 2 ...`.
 */
export function aboutOneMachine(reason: string): string {
  return `machine ${singularReason(reason)}`;
}

/** The unplace category of a rejection by checker `index` of {@link FEASIBILITY_CHAIN}. */
export function whyOf(index: number): UnplaceWhy {
  const checker = FEASIBILITY_CHAIN[index];
  if (checker === ReplacesChecker) return 'replaced';
  if (checker === MachineOfChecker) return 'peer-moved';
  return 'infeasible';
}

/**
 * Checkers that relate the newcomer to the units already on the machine: MachineOf=,
 * Conflicts= (both directions) and Replaces= (fleet's semantics). Glob checks use the
 * machine's name-sorted unit list: a glob with literal prefix `web@` bisects to the `web@`
 * names and tests only those, and the reverse direction skips any glob whose literal prefix
 * the newcomer's name does not start with.
 */
import type { Glob } from '../../unit/glob.js';
import type { FeasibilityChecker, Probe } from './checker.js';
import type { CompiledUnit } from './compile.js';
import type { MachineSlot } from './state.js';

/**
 * MachineOf=: only where every peer is placed. A unit on a MachineOf cycle is never placed.
 * Reasons: `lack peer web@1.service`, `lack peer b.service (MachineOf cycle)`.
 */
export const MachineOfChecker: FeasibilityChecker = {
  name: 'MachineOfChecker',
  byName: true,
  accepts(_ctx, u, s) {
    if (u.cyclePeer !== '') return false;
    for (const peer of u.machineOf) if (!s.has(peer)) return false;
    return true;
  },
  explain(_ctx, u, s) {
    if (u.cyclePeer !== '') return `lack peer ${u.cyclePeer} (MachineOf cycle)`;
    const missing = u.machineOf.find((p) => !s.has(p)) ?? '';
    return `lack peer ${missing}`;
  },
};

/**
 * Conflicts=, checked both ways: none of the newcomer's globs matches a unit on the machine,
 * and no unit on the machine has a glob matching the newcomer (so a one-way declaration
 * keeps both apart). A unit never conflicts with itself. Reason: `conflict with web@1.service`.
 */
export const ConflictsChecker: FeasibilityChecker = {
  name: 'ConflictsChecker',
  byName: true,
  accepts: (_ctx, u, s) => conflictOn(u, s) === '',
  explain: (_ctx, u, s) => `conflict with ${conflictOn(u, s)}`,
};

/** The first unit on `s` that conflicts with `u`, or ''. */
function conflictOn(u: CompiledUnit, s: MachineSlot): string {
  for (const g of u.conflicts) {
    const hit = firstMatch(g, s, u.name);
    if (hit !== undefined) return hit.name;
  }
  for (const e of s.conflictDeclarers) {
    if (e.name !== u.name && anyMatches(e.conflicts, u.name)) return e.name;
  }
  return '';
}

/**
 * Replaces=, as fleet's engine does it: the newcomer may go where a unit it replaces runs,
 * and displaces it (it is then placed elsewhere); it may not go where a unit that replaces it
 * runs. When both replace each other the pair is circular and both declarations are ignored.
 * Displacing a unit placed before this pass is a move, so it must fit the move budget.
 * Reasons: `run web-v2.service, which replaces this unit`,
 * `would displace units this pass may not move`.
 */
export const ReplacesChecker: FeasibilityChecker = {
  name: 'ReplacesChecker',
  byName: true,
  accepts(ctx, u, s, probe) {
    if (replacerOn(u, s) !== '') return false;
    if (u.replaces.length === 0) return true;
    collectDisplaced(u, s, probe);
    if (ctx.mode === 'recheck' || probe.displaced.length === 0) return true;
    return ctx.canDisplace(probe.displaced, s);
  },
  explain(_ctx, u, s) {
    const by = replacerOn(u, s);
    if (by !== '') return `run ${by}, which replaces this unit`;
    return 'would displace units this pass may not move';
  },
};

/** A unit on `s` that replaces `u` without `u` replacing it back, or ''. */
function replacerOn(u: CompiledUnit, s: MachineSlot): string {
  for (const e of s.replaceDeclarers) {
    if (e.name === u.name || !anyMatches(e.replaces, u.name)) continue;
    if (!anyMatches(u.replaces, e.name)) return e.name;
  }
  return '';
}

/** Fill the probe with the units on `s` that `u` replaces (circular pairs excluded). */
function collectDisplaced(u: CompiledUnit, s: MachineSlot, probe: Probe): void {
  for (const g of u.replaces) {
    for (let i = s.lowerBound(g.literalPrefix); i < s.units.length; i++) {
      const e = s.units[i] as CompiledUnit;
      if (!e.name.startsWith(g.literalPrefix)) break;
      if (e.name === u.name || !g.test(e.name) || probe.displaced.includes(e)) continue;
      if (anyMatches(e.replaces, u.name)) continue;
      probe.displaced.push(e);
      probe.freedCpu += e.cpu;
      probe.freedMemory += e.memory;
      if (u.template !== '' && e.template === u.template) probe.freedSameTemplate++;
    }
  }
}

/** The first unit on `s` (other than `self`) whose name `g` matches. */
function firstMatch(g: Glob, s: MachineSlot, self: string): CompiledUnit | undefined {
  for (let i = s.lowerBound(g.literalPrefix); i < s.units.length; i++) {
    const e = s.units[i] as CompiledUnit;
    if (!e.name.startsWith(g.literalPrefix)) return undefined;
    if (e.name !== self && g.test(e.name)) return e;
  }
  return undefined;
}

function anyMatches(globs: readonly Glob[], name: string): boolean {
  for (const g of globs) if (name.startsWith(g.literalPrefix) && g.test(name)) return true;
  return false;
}

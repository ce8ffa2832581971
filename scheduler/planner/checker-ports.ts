/**
 * `[X-Service] Port=`: a machine takes a unit only when it can give it every port. A static
 * port held by another unit there rules the machine out (two units needing one static number
 * never share a machine); dynamic ports need that many free numbers in the machine's range.
 * Units the newcomer would displace (Replaces=) are credited. O(ports of the unit) per machine,
 * plus the displaced units' ports.
 *
 * Reasons: `have port 8080 taken` (the first static port held by another unit) and `have no
 * free port in 20000-32767` (or `have fewer than 2 free ports in ...` for two dynamic ports).
 * Neither counts free numbers, so machines short in the same way share one reason.
 */
import type { FeasibilityChecker, Probe } from './checker.js';
import type { CompiledUnit } from './compile.js';
import type { MachineSlot } from './state.js';

/** How many of the units `probe` would displace from `s` hold `port` there. */
function freedHolders(s: MachineSlot, probe: Probe, port: number): number {
  let n = 0;
  for (const e of probe.displaced) if (s.ports.of(e.name)?.some((p) => p.number === port)) n++;
  return n;
}

/** The first static port of `u` that another unit holds on `s`, or 0. */
function takenStatic(u: CompiledUnit, s: MachineSlot, probe: Probe): number {
  for (const want of u.ports) {
    if (want.number === 0) continue;
    const users = s.ports.users(want.number);
    if (users > 0 && users - freedHolders(s, probe, want.number) > 0) return want.number;
  }
  return 0;
}

/** Whether `s`'s range has room for `u`'s dynamic ports (and its static ones inside it). */
function rangeFits(u: CompiledUnit, s: MachineSlot, probe: Probe): boolean {
  if (u.dynamicPorts === 0) return true;
  let free = s.ports.freeInRange();
  for (const e of probe.displaced) {
    for (const p of s.ports.of(e.name) ?? []) if (s.ports.inside(p.number)) free++;
  }
  let needed = u.dynamicPorts;
  for (const want of u.ports) {
    if (want.number > 0 && s.ports.inside(want.number) && s.ports.users(want.number) === 0) {
      needed++;
    }
  }
  return free >= needed;
}

export const PortsChecker: FeasibilityChecker = {
  name: 'PortsChecker',
  byName: false,
  accepts(_ctx, u, s, probe) {
    if (u.ports.length === 0) return true;
    return takenStatic(u, s, probe) === 0 && rangeFits(u, s, probe);
  },
  explain(_ctx, u, s, probe) {
    const taken = takenStatic(u, s, probe);
    if (taken > 0) return `have port ${taken} taken`;
    const n = u.dynamicPorts;
    const range = s.ports.rangeText;
    return n === 1
      ? `have no free port in ${range}`
      : `have fewer than ${n} free ports in ${range}`;
  },
};

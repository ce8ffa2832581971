/**
 * fast-check arbitraries for planner property tests (random clusters, units and existing
 * placements) and an independent, naive checker of the hard rules, written from the design (docs/architecture.md)
 * rather than from the planner's own checkers.
 */
import fc from 'fast-check';
import { compileGlob } from '../../unit/glob.js';
import type { PlannerMachine, PlannerUnit, Snapshot } from '../../scheduler/planner/index.js';
import { machine, snapshot, unit } from './planner-fixtures.js';

const IDS = ['a1', 'a2', 'a3', 'b1', 'b10', 'b2', 'c', 'c0', 'd9', 'e'];
const NAMES = [
  'web@1.service',
  'web@2.service',
  'web@3.service',
  'api@1.service',
  'api@2.service',
  'api@3.service',
  'a.service',
  'b.service',
  'c.service',
];
const GLOBS = [
  'web@*.service',
  'api@?.service',
  'a.service',
  'b.service',
  '*.service',
  'web@[12].service',
];

const machineArb = (id: string): fc.Arbitrary<PlannerMachine> =>
  fc
    .record({
      zone: fc.constantFrom('a', 'b', 'c', undefined),
      disk: fc.constantFrom('ssd', 'hdd'),
      cpu: fc.constantFrom(0, 1000, 2000, 4000),
      memory: fc.constantFrom(0, 1000, 4000),
      drain: fc.integer({ min: 0, max: 9 }),
    })
    .map((r) =>
      machine(id, {
        meta: r.zone === undefined ? { disk: r.disk } : { zone: r.zone, disk: r.disk },
        cpu: r.cpu,
        memory: r.memory,
        drained: r.drain === 0,
      }),
    );

const clusterArb: fc.Arbitrary<PlannerMachine[]> = fc
  .uniqueArray(fc.constantFrom(...IDS), { minLength: 0, maxLength: IDS.length })
  .chain((ids) => fc.tuple(...ids.map(machineArb)));

/** Template-wide settings, so every instance of a template agrees (as one file would). */
const templateArb = fc.record({
  maxPerMachine: fc.constantFrom(0, 0, 1, 2),
  spreadBy: fc.constantFrom('', 'zone'),
});

const unitArb = (name: string): fc.Arbitrary<PlannerUnit> =>
  fc
    .record({
      machineId: fc.option(fc.constantFrom('a', 'a1', 'b1', 'b', 'c', 'e', 'zz'), { freq: 5 }),
      zone: fc.option(fc.subarray(['a', 'b', 'c'], { minLength: 1 }), { freq: 2 }),
      disk: fc.option(fc.constantFrom('ssd', 'hdd'), { freq: 3 }),
      machineOf: fc.subarray(NAMES, { maxLength: 2 }),
      ofWeight: fc.integer({ min: 0, max: 4 }),
      conflicts: fc.subarray(GLOBS, { maxLength: 2 }),
      replaces: fc.subarray(GLOBS, { maxLength: 1 }),
      global: fc.integer({ min: 0, max: 6 }).map((n) => n === 0),
      cpu: fc.constantFrom(0, 0, 300, 700),
      memory: fc.constantFrom(0, 0, 500, 1500),
    })
    .map((r) => {
      let machineOf = r.ofWeight === 0 ? r.machineOf.filter((p) => p !== name) : [];
      let conflicts = r.conflicts;
      let replaces = r.replaces;
      let global = r.global;
      const machineId = r.machineId ?? '';
      // The design's invalid combinations (docs/architecture.md, "Unit files") never reach the planner.
      if (machineId !== '') [machineOf, conflicts, replaces, global] = [[], [], [], false];
      if (global) [machineOf, replaces] = [[], []];
      if (conflicts.length > 0) replaces = [];
      const matches = (globs: readonly string[], n: string): boolean =>
        globs.some((g) => compileGlob(g).test(n));
      machineOf = machineOf.filter((p) => !matches(conflicts, p) && !matches(replaces, p));
      const metadata: Record<string, readonly string[]> = {};
      if (r.zone !== null) metadata['zone'] = r.zone;
      if (r.disk !== null) metadata['disk'] = [r.disk];
      return unit(name, {
        machineId,
        machineOf,
        conflicts,
        replaces,
        global,
        metadata,
        cpu: r.cpu,
        memory: r.memory,
      });
    });

const unitsArb: fc.Arbitrary<PlannerUnit[]> = fc
  .tuple(fc.subarray(NAMES), templateArb, templateArb)
  .chain(([names, web, api]) =>
    fc.tuple(...names.map(unitArb)).map((units) =>
      units.map((u) => {
        const t =
          u.template === 'web@.service' ? web : u.template === 'api@.service' ? api : undefined;
        if (t === undefined) return u;
        return { ...u, fleet: { ...u.fleet, ...t } };
      }),
    ),
  );

const placementsArb = fc.array(
  fc.tuple(fc.constantFrom(...NAMES, 'zombie.service'), fc.constantFrom(...IDS, 'lost1')),
  { maxLength: 14 },
);

export const snapshotArb: fc.Arbitrary<Snapshot> = fc
  .tuple(clusterArb, unitsArb, placementsArb)
  .map(([ms, units, pairs]) => {
    const map: Record<string, string[]> = {};
    for (const [u, m] of pairs) (map[u] ??= []).push(m);
    return snapshot(ms, units, map);
  });

/** A broken hard rule: where (machine id, '' when not about one machine) and what. */
export interface Violation {
  readonly machine: string;
  readonly text: string;
}

/** Every violation of a hard rule in `after` (empty when none). */
export function violations(
  snap: Snapshot,
  after: ReadonlyMap<string, readonly string[]>,
): Violation[] {
  const out: Violation[] = [];
  const bad = (machine: string, text: string): void => {
    out.push({ machine, text });
  };
  const units = new Map(snap.units.map((u) => [u.name, u]));
  const byId = new Map(snap.machines.map((m) => [m.id, m]));
  const on = new Map<string, PlannerUnit[]>();
  const glob = (g: string, n: string): boolean => compileGlob(g).test(n);
  for (const [name, ms] of after) {
    const u = units.get(name);
    if (u === undefined) bad('', `${name} is inactive but placed`);
    else if (!u.fleet.global && ms.length > 1) bad('', `${name} has ${ms.length} placements`);
    for (const m of ms) {
      if (!byId.has(m)) bad(m, `${name} on a lost machine`);
      if (u !== undefined) on.set(m, [...(on.get(m) ?? []), u]);
    }
  }
  for (const [mid, here] of on) {
    const m = byId.get(mid);
    if (m === undefined) continue;
    let cpu = 0;
    let memory = 0;
    for (const u of here) {
      const f = u.fleet;
      cpu += u.resources.cpuMillicores;
      memory += u.resources.memoryBytes;
      if (m.drained) bad(mid, `${u.name} on a drained machine`);
      if (f.machineId !== '') {
        const exact = snap.machines.filter((x) => x.id === f.machineId);
        const pre = snap.machines.filter((x) => x.id.startsWith(f.machineId));
        const target = exact.length === 1 ? exact : pre;
        if (target.length !== 1 || target[0]?.id !== mid) bad(mid, `${u.name} breaks MachineID`);
      }
      for (const [k, vs] of f.machineMetadata) {
        if (!vs.includes(m.metadata.get(k) ?? '\u0000')) bad(mid, `${u.name} lacks ${k}`);
      }
      for (const p of f.machineOf) {
        if (!here.some((x) => x.name === p)) bad(mid, `${u.name} without peer ${p}`);
      }
      for (const x of here) {
        if (x === u) continue;
        if (f.conflicts.some((g) => glob(g, x.name))) bad(mid, `${u.name} conflicts ${x.name}`);
        const iReplace = f.replaces.some((g) => glob(g, x.name));
        const theyReplace = x.fleet.replaces.some((g) => glob(g, u.name));
        if (iReplace && !theyReplace) bad(mid, `${u.name} replaces ${x.name}`);
      }
      if (f.maxPerMachine > 0 && u.template !== '') {
        const n = here.filter((x) => x.template === u.template).length;
        if (n > f.maxPerMachine) bad(mid, `${n} of ${u.template}`);
      }
    }
    if (cpu > m.capacity.cpuMillicores) bad(mid, 'cpu overcommitted');
    if (memory > m.capacity.memoryBytes) bad(mid, 'memory overcommitted');
  }
  // MachineOf cycles are never placed.
  const onCycle = (start: string): boolean => {
    const seen = new Set<string>();
    const walk = (n: string): boolean =>
      (units.get(n)?.fleet.machineOf ?? []).some(
        (p) => p === start || (!seen.has(p) && (seen.add(p), walk(p))),
      );
    return walk(start);
  };
  for (const name of after.keys()) if (onCycle(name)) bad('', `${name} is on a MachineOf cycle`);
  return out;
}

/**
 * Synthetic, seeded clusters for the planner benchmark: machines with zone and rack metadata
 * and capacity, and a unit mix that exercises every checker (plain units, template instances
 * with Conflicts globs, MachineMetadata, MachineOf pairs, SpreadBy/MaxPerMachine templates,
 * Global units and resource reservations). Same seed, same workload.
 */
import type { PlannerMachine, PlannerUnit, Snapshot } from '../scheduler/planner/index.js';
import type { FleetOptions } from '../unit/model.js';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/** mulberry32: a small, fast, seedable PRNG (uniform in [0, 1)). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface WorkloadOptions {
  readonly machines: number;
  /** Non-global units per machine (default 20). */
  readonly unitsPerMachine?: number;
  readonly seed?: number;
  /** Zones (default 6); racks hold 20 machines each. */
  readonly zones?: number;
}

/** Counts of what the workload holds, for the benchmark's report. */
export interface WorkloadShape {
  readonly machines: number;
  readonly units: number;
  readonly globals: number;
}

const FLEET: FleetOptions = {
  machineId: '',
  machineMetadata: new Map(),
  machineOf: [],
  conflicts: [],
  global: false,
  replaces: [],
  maxPerMachine: 0,
  maxInstances: 0,
  spreadBy: '',
  stopOnDisconnectMs: 0,
};

/** A snapshot with no placements yet: everything is to be placed. */
export function makeWorkload(opts: WorkloadOptions): { snapshot: Snapshot; shape: WorkloadShape } {
  const rand = mulberry32(opts.seed ?? 1);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)] as T;
  const zones = Array.from({ length: opts.zones ?? 6 }, (_, i) => `z${i}`);
  const racks = Array.from({ length: Math.ceil(opts.machines / 20) }, (_, i) => `r${i}`);
  const machines: PlannerMachine[] = [];
  for (let i = 0; i < opts.machines; i++) {
    const role = rand() < 0.7 ? 'worker' : 'edge';
    machines.push({
      id: `m${i.toString(16).padStart(6, '0')}${Math.floor(rand() * 0xffff).toString(16)}`,
      metadata: new Map([
        ['zone', zones[i % zones.length] as string],
        ['rack', `r${Math.floor(i / 20)}`],
        ['role', role],
        ['disk', rand() < 0.5 ? 'ssd' : 'hdd'],
      ]),
      capacity: {
        cpuMillicores: pick([8000, 12000, 16000]),
        memoryBytes: pick([16, 24, 32]) * GIB,
        tasks: 0,
      },
      drained: false,
    });
  }
  const units: PlannerUnit[] = [];
  const add = (name: string, template: string, fleet: Partial<FleetOptions>, reserve = true) => {
    units.push({
      name,
      template,
      desired: 'launched',
      fleet: { ...FLEET, ...fleet },
      resources: reserve
        ? {
            cpuMillicores: pick([0, 100, 250, 500]),
            memoryBytes: pick([0, 64, 256, 512]) * MIB,
            tasks: 0,
          }
        : { cpuMillicores: 0, memoryBytes: 0, tasks: 0 },
    });
  };
  const target = opts.machines * (opts.unitsPerMachine ?? 20);
  let group = 0;
  while (units.length < target) {
    const kind = rand();
    const g = group++;
    if (kind < 0.3) {
      // Plain units.
      for (let i = 0; i < 10; i++) add(`svc-${g}-${i}.service`, '', {});
    } else if (kind < 0.55) {
      // A template whose instances conflict with each other, plus MachineOf sidekicks.
      const size = 5 + Math.floor(rand() * 20);
      const sidekicks = rand() < 0.5;
      for (let i = 1; i <= size; i++) {
        add(`web${g}@${i}.service`, `web${g}@.service`, { conflicts: [`web${g}@*.service`] });
        if (sidekicks) {
          add(`web${g}-presence@${i}.service`, `web${g}-presence@.service`, {
            machineOf: [`web${g}@${i}.service`],
          });
        }
      }
    } else if (kind < 0.75) {
      // Spread over zones (or, for one in four templates, racks), at most two per machine.
      const size = 6 + Math.floor(rand() * 18);
      const key = rand() < 0.25 ? 'rack' : 'zone';
      for (let i = 1; i <= size; i++) {
        add(`api${g}@${i}.service`, `api${g}@.service`, { spreadBy: key, maxPerMachine: 2 });
      }
    } else if (kind < 0.85) {
      // Metadata: OR over zones, AND with disk.
      const meta = new Map<string, readonly string[]>([
        ['zone', [pick(zones), pick(zones)]],
        ['disk', ['ssd']],
      ]);
      for (let i = 0; i < 8; i++) add(`db-${g}-${i}.service`, '', { machineMetadata: meta });
    } else if (kind < 0.9) {
      // Metadata: one of two racks (40 machines).
      const meta = new Map<string, readonly string[]>([['rack', [pick(racks), pick(racks)]]]);
      for (let i = 0; i < 6; i++) add(`rackpin-${g}-${i}.service`, '', { machineMetadata: meta });
    } else {
      // Conflicts by a plain glob between singleton units of one family.
      for (let i = 0; i < 6; i++) {
        add(`cache-${g}-${i}.service`, '', { conflicts: [`cache-${g}-*.service`] });
      }
    }
  }
  units.length = target;
  // Two Global units: one on every worker, one everywhere but conflicting with an edge agent.
  add(
    'node-monitor.service',
    '',
    { global: true, machineMetadata: new Map([['role', ['worker']]]) },
    false,
  );
  add('log-shipper.service', '', { global: true, conflicts: ['legacy-shipper.service'] }, false);
  return {
    snapshot: { machines, units, placements: new Map() },
    shape: { machines: machines.length, units: target, globals: 2 },
  };
}

/**
 * Factories for planner tests: machines and units with unremarkable defaults, so each test
 * states only what its behaviour depends on, and small readers of a plan's outcome.
 */
import type { FleetOptions } from '../../unit/model.js';
import {
  applyPlan,
  plan,
  type Plan,
  type PlanOptions,
  type PlannerMachine,
  type PlannerUnit,
  type PortRange,
  type PortWanted,
  type Snapshot,
} from '../../scheduler/planner/index.js';

export const MIB = 1024 * 1024;
export const GIB = 1024 * MIB;

export interface MachineSpec {
  meta?: Record<string, string>;
  cpu?: number;
  memory?: number;
  drained?: boolean;
  /** Its driver runs images (runc); default false, like the process driver. */
  images?: boolean;
  /** Its dynamic port range; default the planner's (20000-32767). */
  portRange?: PortRange;
}

/** A machine with 4000 millicores and 8 GiB unless told otherwise. */
export function machine(id: string, spec: MachineSpec = {}): PlannerMachine {
  return {
    id,
    metadata: new Map(Object.entries(spec.meta ?? {})),
    capacity: { cpuMillicores: spec.cpu ?? 4000, memoryBytes: spec.memory ?? 8 * GIB, tasks: 0 },
    drained: spec.drained ?? false,
    runsImages: spec.images ?? false,
    ...(spec.portRange !== undefined ? { portRange: spec.portRange } : {}),
  };
}

/** `[X-Fleet]` overrides; MachineMetadata as `{ region: ['eu', 'us'] }`. */
export type FleetSpec = Partial<Omit<FleetOptions, 'machineMetadata'>> & {
  metadata?: Record<string, readonly string[]>;
};

export interface UnitSpec extends FleetSpec {
  cpu?: number;
  memory?: number;
  desired?: 'loaded' | 'launched';
  /** Runs an image (`[Container]`). */
  image?: boolean;
  /** `[X-Service] Port=` lines: number 0 for a dynamic port. */
  ports?: readonly PortWanted[];
}

/** The template of an instance or template name (`web@3.service` -> `web@.service`). */
export function templateOf(name: string): string {
  const at = name.indexOf('@');
  if (at < 0) return '';
  const dot = name.lastIndexOf('.');
  return `${name.slice(0, at)}@${name.slice(dot)}`;
}

/** An active unit; no constraints and no reservation unless told otherwise. */
export function unit(name: string, spec: UnitSpec = {}): PlannerUnit {
  const { cpu, memory, desired, metadata, image, ports, ...fleet } = spec;
  return {
    name,
    image: image ?? false,
    ...(ports !== undefined ? { ports } : {}),
    template: templateOf(name),
    desired: desired ?? 'launched',
    resources: { cpuMillicores: cpu ?? 0, memoryBytes: memory ?? 0, tasks: 0 },
    fleet: {
      machineId: '',
      machineOf: [],
      conflicts: [],
      global: false,
      replaces: [],
      maxPerMachine: 0,
      maxInstances: 0,
      spreadBy: '',
      stopOnDisconnectMs: 0,
      ...fleet,
      machineMetadata: new Map(Object.entries(metadata ?? {})),
    },
  };
}

/** A snapshot; `placements` as `{ 'a.service': 'm1' }` or `{ 'g.service': ['m1', 'm2'] }`. */
export function snapshot(
  machines: readonly PlannerMachine[],
  units: readonly PlannerUnit[],
  placements: Record<string, string | readonly string[]> = {},
): Snapshot {
  const map = new Map<string, readonly string[]>();
  for (const [u, m] of Object.entries(placements)) map.set(u, typeof m === 'string' ? [m] : m);
  return { machines, units, placements: map };
}

/** The outcome of one pass: the plan and the placements it leads to. */
export interface Outcome {
  readonly plan: Plan;
  readonly after: Map<string, string[]>;
  /** The one machine of a non-global unit afterwards, or undefined. */
  where(unit: string): string | undefined;
  /** The snapshot the cluster is in after the plan is applied. */
  next(): Snapshot;
}

export function run(snap: Snapshot, options: PlanOptions = {}): Outcome {
  const p = plan(snap, options);
  const after = applyPlan(snap.placements, p);
  return {
    plan: p,
    after,
    where: (u) => {
      const list = after.get(u);
      if (list !== undefined && list.length > 1) throw new Error(`${u} has ${list.length}`);
      return list?.[0];
    },
    next: () => ({ machines: snap.machines, units: snap.units, placements: after }),
  };
}

/** Plan repeatedly (applying each plan) until a pass does no work; returns every pass. */
export function converge(snap: Snapshot, options: PlanOptions = {}, limit = 50): Outcome[] {
  const passes: Outcome[] = [];
  let current = snap;
  for (let i = 0; i < limit; i++) {
    const o = run(current, options);
    passes.push(o);
    if (o.plan.place.length === 0 && o.plan.unplace.length === 0) return passes;
    current = o.next();
  }
  throw new Error(`no fixed point after ${limit} passes`);
}

/** Machines `m1..mN` (zero-padded past 9, so id order is numeric order). */
export function machines(
  n: number,
  spec: (i: number) => MachineSpec = () => ({}),
): PlannerMachine[] {
  const width = String(n).length;
  return Array.from({ length: n }, (_, i) =>
    machine(`m${String(i + 1).padStart(width, '0')}`, spec(i)),
  );
}

/**
 * The cluster as the planner sees it, read from etcd at one revision: for Plan's dry runs and
 * for what ListMachines reports as reserved. Unit files are parsed once per (name, hash) and
 * the result kept in a bounded cache, since a listing of 10,000 units should not parse 10,000
 * files on every call.
 */
import type { Logger } from 'pino';
import type { Machine, MachineConfig, Placement, Unit } from '../../proto/flotilla/v1/records.js';
import { codecs, type Store } from '../../store/index.js';
import { parseUnit, type UnitDefinition, type UnitStateName } from '../../unit/index.js';
import type { PlannerMachine, PlannerUnit } from '../planner/index.js';
import { lastSegment } from './reads.js';

/** Entries kept before the cache starts over; a few MB at most. */
const CACHE_LIMIT = 20_000;

/** Parsed unit definitions by name and content hash. A file that does not parse is cached as null. */
export class DefinitionCache {
  private readonly map = new Map<string, UnitDefinition | null>();

  constructor(private readonly logger: Logger) {}

  /** The definition of a stored unit, or undefined (logged once) when its file does not parse. */
  get(unit: Unit): UnitDefinition | undefined {
    const key = `${unit.name}\u0000${unit.hash}`;
    const hit = this.map.get(key);
    if (hit !== undefined) return hit ?? undefined;
    let def: UnitDefinition | null = null;
    try {
      def = parseUnit(unit.name, unit.file);
    } catch (err) {
      this.logger.warn({ unit: unit.name, err }, 'stored unit file does not parse; ignoring it');
    }
    if (this.map.size >= CACHE_LIMIT) this.map.clear();
    this.map.set(key, def);
    return def ?? undefined;
  }
}

/** Everything the planner needs, as stored, at one revision. */
export interface ClusterRecords {
  readonly revision: bigint;
  readonly units: Map<string, Unit>;
  readonly machines: Map<string, Machine>;
  readonly configs: Map<string, MachineConfig>;
  /** Unit name -> its placements (a Global unit has several). */
  readonly placements: Map<string, Placement[]>;
}

/** Reads units/, placements/, machines/ and machine-metadata/ at one revision. */
export async function readCluster(
  store: Store,
  kinds: { units: boolean } = { units: true },
): Promise<ClusterRecords> {
  const k = store.keys;
  const machinesList = await store.list(k.dir('machine'));
  const revision = machinesList.revision;
  const [configsList, placementsList, unitsList] = await Promise.all([
    store.list(k.dir('machine-metadata'), { revision }),
    store.list(k.dir('placement'), { revision }),
    kinds.units ? store.list(k.dir('unit'), { revision }) : Promise.resolve({ items: [] }),
  ]);
  const machines = new Map<string, Machine>();
  for (const kv of machinesList.items) {
    const id = lastSegment(kv.key);
    machines.set(id, { ...codecs.machine.decode(kv.key, kv.value), id });
  }
  const configs = new Map<string, MachineConfig>();
  for (const kv of configsList.items) {
    configs.set(lastSegment(kv.key), codecs['machine-metadata'].decode(kv.key, kv.value));
  }
  const units = new Map<string, Unit>();
  for (const kv of unitsList.items) {
    units.set(lastSegment(kv.key), codecs.unit.decode(kv.key, kv.value));
  }
  const placements = new Map<string, Placement[]>();
  for (const kv of placementsList.items) {
    const parsed = k.parse(kv.key);
    if (parsed?.kind !== 'placement' || parsed.machine === undefined) continue;
    const p = { ...codecs.placement.decode(kv.key, kv.value), machine: parsed.machine };
    const list = placements.get(parsed.name);
    if (list === undefined) placements.set(parsed.name, [p]);
    else list.push(p);
  }
  return { revision, units, machines, configs, placements };
}

/** The agent's metadata with the API's merged over it (the API's values win). */
export function mergedMetadata(
  machine: Machine | undefined,
  config: MachineConfig | undefined,
): Record<string, string> {
  return { ...(machine?.metadata ?? {}), ...(config?.metadata ?? {}) };
}

/** A machine record (and its API config) as the planner's machine. */
export function plannerMachine(
  machine: Machine,
  config: MachineConfig | undefined,
): PlannerMachine {
  return {
    id: machine.id,
    metadata: new Map(Object.entries(mergedMetadata(machine, config))),
    capacity: {
      cpuMillicores: Number(machine.capacity?.cpuMillicores ?? 0n),
      memoryBytes: Number(machine.capacity?.memoryBytes ?? 0n),
      tasks: Number(machine.capacity?.tasks ?? 0n),
    },
    drained: config?.drained ?? false,
  };
}

/** A parsed active unit as the planner's unit. */
export function plannerUnit(
  def: UnitDefinition,
  desired: Exclude<UnitStateName, 'inactive'>,
): PlannerUnit {
  return {
    name: def.name.name,
    template: def.name.isInstance ? def.name.template : '',
    fleet: def.fleet,
    resources: def.service.resources,
    desired,
  };
}

/**
 * The Machines service: what the cluster's agents advertise, what the API sets on them
 * (machine-metadata/<id>: metadata merged over the agent's, and the drained flag), and what
 * placed units reserve. Settings persist across agent restarts, so a machine can be
 * configured while its agent is down, as long as its id is known (live or configured before).
 */
import type { MachineConfig, Resources } from '../../proto/flotilla/v1/records.js';
import type {
  DrainMachineRequest,
  ListMachinesResponse,
  MachineStatus,
  SetMachineMetadataRequest,
} from '../../proto/flotilla/v1/machines.js';
import { atomicTxn, codecs, type Store } from '../../store/index.js';
import { isInvalidUnit, mergedMetadata, type DefinitionCache } from '../snapshot.js';
import { ApiError } from './errors.js';
import {
  decodeKv,
  getAt,
  knownMachines,
  lastSegment,
  prefixEnd,
  rangeAt,
  readCluster,
  resolveMachine,
} from './reads.js';
import { schedulerStatus } from './rescheduling.js';
import { retryOnConflict } from './unit-writes.js';

const METADATA_KEY = /^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}$/;
const METADATA_VALUE = /^[^\s"'=,]{1,256}$/;

/** ListMachines: every live machine, by id, with its merged metadata and reservations. */
export async function listMachines(
  store: Store,
  definitions: DefinitionCache,
): Promise<ListMachinesResponse> {
  const [cluster, scheduler] = await Promise.all([readCluster(store), schedulerStatus(store)]);
  const counts = new Map<string, { units: number; reserved: Resources }>();
  for (const [name, byMachine] of cluster.placements) {
    const unit = cluster.units.get(name);
    const def = unit === undefined ? undefined : definitions.get(unit);
    for (const machine of byMachine.keys()) {
      const entry = counts.get(machine) ?? { units: 0, reserved: zero() };
      entry.units += 1;
      if (def !== undefined && !isInvalidUnit(def)) add(entry.reserved, def.service.resources);
      counts.set(machine, entry);
    }
  }
  const ids = [...cluster.machines.keys()].sort();
  return {
    machines: ids.map((id) => {
      const config = cluster.configs.get(id);
      const entry = counts.get(id);
      return {
        machine: cluster.machines.get(id),
        metadata: mergedMetadata(cluster.machines.get(id), config),
        drained: config?.drained ?? false,
        units: entry?.units ?? 0,
        reserved: entry?.reserved ?? zero(),
      };
    }),
    scheduler,
  };
}

/**
 * SetMachineMetadata: sets and removes API metadata keys of one machine (id or unique
 * prefix). Keys are letters, digits and `_.-/`; values are non-empty without whitespace,
 * quotes, `=` or `,` (so a unit's MachineMetadata= can name them).
 */
export async function setMachineMetadata(
  store: Store,
  definitions: DefinitionCache,
  req: SetMachineMetadataRequest,
): Promise<MachineStatus> {
  const problems: string[] = [];
  for (const [key, value] of Object.entries(req.set)) {
    if (!METADATA_KEY.test(key)) problems.push(`metadata key ${JSON.stringify(key)} is not valid`);
    if (!METADATA_VALUE.test(value)) {
      problems.push(`metadata value ${JSON.stringify(value)} of ${key} is not valid`);
    }
    if (req.remove.includes(key)) problems.push(`metadata key ${key} is both set and removed`);
  }
  if (problems.length > 0) throw new ApiError('invalid-argument', problems.join('\n'));
  return updateConfig(store, definitions, req.machine, (config) => {
    const metadata = { ...config.metadata, ...req.set };
    for (const key of req.remove) delete metadata[key];
    return { ...config, metadata };
  });
}

/** DrainMachine / UndrainMachine: sets the drained flag; the leader moves units off. */
export function setDrained(
  store: Store,
  definitions: DefinitionCache,
  req: DrainMachineRequest,
  drained: boolean,
): Promise<MachineStatus> {
  return updateConfig(store, definitions, req.machine, (config) => ({ ...config, drained }));
}

/** Read-modify-write of machine-metadata/<id>, compare-and-swap, then the machine's status. */
async function updateConfig(
  store: Store,
  definitions: DefinitionCache,
  query: string,
  change: (config: MachineConfig) => MachineConfig,
): Promise<MachineStatus> {
  const id = resolveMachine(await knownMachines(store), query);
  const key = store.keys.machineMetadata(id);
  await retryOnConflict(async () => {
    const { values } = await getAt(store, [key]);
    const kv = values.get(key);
    const current = kv === undefined ? undefined : decodeKv(codecs['machine-metadata'], kv);
    const before: MachineConfig = current?.value ?? { machine: id, metadata: {}, drained: false };
    const after = change({ ...before, machine: id });
    const json = codecs['machine-metadata'].encode(after);
    if (json === codecs['machine-metadata'].encode(before)) return; // nothing changes
    await atomicTxn(store, (b) =>
      current === undefined
        ? b.putIfAbsent(key, json)
        : b.putIfModRevision(key, json, current.modRevision),
    );
  });
  return machineStatus(store, definitions, id);
}

/** One machine's status, read at one revision: O(units placed on it). */
export async function machineStatus(
  store: Store,
  definitions: DefinitionCache,
  id: string,
): Promise<MachineStatus> {
  const { values, revision } = await getAt(store, [
    store.keys.machine(id),
    store.keys.machineMetadata(id),
  ]);
  const machineKv = values.get(store.keys.machine(id));
  const configKv = values.get(store.keys.machineMetadata(id));
  const machine =
    machineKv === undefined ? undefined : codecs.machine.decode(machineKv.key, machineKv.value);
  const config =
    configKv === undefined
      ? undefined
      : codecs['machine-metadata'].decode(configKv.key, configKv.value);
  const dir = store.keys.placementsOn(id);
  const placed = await rangeAt(
    store,
    { start: dir, end: prefixEnd(dir) },
    { revision, keysOnly: true },
  );
  const names = placed.kvs.map((kv) => lastSegment(kv.key));
  const units = await getAt(
    store,
    names.map((n) => store.keys.unit(n)),
    revision,
  );
  const reserved = zero();
  for (const kv of units.values.values()) {
    const def = definitions.get(codecs.unit.decode(kv.key, kv.value));
    if (!isInvalidUnit(def)) add(reserved, def.service.resources);
  }
  return {
    ...(machine === undefined ? {} : { machine: { ...machine, id } }),
    metadata: mergedMetadata(machine, config),
    drained: config?.drained ?? false,
    units: names.length,
    reserved,
  };
}

function zero(): Resources {
  return { cpuMillicores: 0n, memoryBytes: 0n, tasks: 0n };
}

function add(
  sum: Resources,
  r: { cpuMillicores: number; memoryBytes: number; tasks: number },
): void {
  sum.cpuMillicores += BigInt(Math.round(r.cpuMillicores));
  sum.memoryBytes += BigInt(Math.round(r.memoryBytes));
  sum.tasks += BigInt(Math.round(r.tasks));
}

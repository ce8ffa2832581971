/**
 * The Machines service: what the cluster's agents advertise, what the API sets on them
 * (machine-metadata/<id>: metadata merged over the agent's, and the drained flag), and what
 * placed units reserve. Settings persist across agent restarts, so a machine can be
 * configured while its agent is down, as long as its id is known (live or configured before).
 */
import type { MachineConfig, Resources } from '../../proto/flotilla/v1/records.js';
import type {
  DrainMachineRequest,
  ListMachinesRequest,
  ListMachinesResponse,
  MachineStatus,
  SetMachineMetadataRequest,
} from '../../proto/flotilla/v1/machines.js';
import { atomicTxn, codecs } from '../../store/index.js';
import { isInvalidUnit, mergedMetadata } from '../view/snapshot.js';
import { ApiError } from '../gate/errors.js';
import {
  corruptRecordWarnings,
  knownMachines,
  fresh,
  pageClock,
  resolveMachine,
  settle,
  type ApiCluster,
} from './reads.js';
import { schedulerStatus } from './rescheduling.js';
import { retryOnConflict } from './unit-writes.js';

const METADATA_KEY = /^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}$/;
const METADATA_VALUE = /^[^\s"'=,]{1,256}$/;

/** Machines per ListMachines page when the request gives no size, and the most served. */
export const MACHINES_PAGE_SIZE = 1_000;
export const MAX_MACHINES_PAGE_SIZE = 5_000;

/**
 * ListMachines: live machines in id order, with their merged metadata and reservations, and
 * among them the machines lost within the last hour (`lost-machines/`, written by the leader),
 * a page at a time (each page read at its own revision, like ListUnits). The token is the last
 * id returned.
 */
export async function listMachines(
  cluster: ApiCluster,
  req: ListMachinesRequest,
): Promise<ListMachinesResponse> {
  if (req.pageSize < 0) {
    throw new ApiError('invalid-argument', `page size ${req.pageSize} is negative`);
  }
  const size = Math.min(
    req.pageSize === 0 ? MACHINES_PAGE_SIZE : req.pageSize,
    MAX_MACHINES_PAGE_SIZE,
  );
  const after = req.pageToken === '' ? undefined : decodeMachineToken(req.pageToken);
  const { mirror } = cluster;
  await fresh(cluster);
  const scheduler = await schedulerStatus(cluster.store, mirror.schedulers.size);
  const machines: MachineStatus[] = [];
  let next = '';
  const live = idsFrom(mirror.machines.entries(after));
  const lost = idsFrom(mirror.lostMachines.entries(after));
  // A machine's status costs what it holds: 5,000 of them with 20 units each took 0.5 s in
  // one turn, so a page also ends when it took its time budget.
  const spent = pageClock();
  for (const id of mergedIds(live, lost)) {
    if (id === after) continue;
    if (machines.length === size || spent()) {
      next = Buffer.from(machines[machines.length - 1]?.machine?.id ?? '').toString('base64url');
      break;
    }
    machines.push(machineStatus(cluster, id));
  }
  return { machines, scheduler, nextPageToken: next, warnings: corruptRecordWarnings(mirror) };
}

function* idsFrom(entries: Iterable<[string, unknown]>): Generator<string> {
  for (const [id] of entries) yield id;
}

/** Two ascending id sequences merged, each id once: live and lost machines in id order. */
function* mergedIds(a: Iterator<string>, b: Iterator<string>): Generator<string> {
  let x = a.next();
  let y = b.next();
  while (!x.done || !y.done) {
    if (y.done || (!x.done && x.value <= y.value)) {
      if (!y.done && x.value === y.value) y = b.next();
      yield x.value as string;
      x = a.next();
    } else {
      yield y.value;
      y = b.next();
    }
  }
}

function decodeMachineToken(raw: string): string {
  const id = Buffer.from(raw, 'base64url').toString('utf8');
  if (id === '' || Buffer.from(id).toString('base64url') !== raw) {
    throw new ApiError('invalid-argument', 'page token is not one this API handed out');
  }
  return id;
}

/**
 * SetMachineMetadata: sets and removes API metadata keys of one machine (id or unique
 * prefix). Keys are letters, digits and `_.-/`; values are non-empty without whitespace,
 * quotes, `=` or `,` (so a unit's MachineMetadata= can name them).
 */
export async function setMachineMetadata(
  cluster: ApiCluster,
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
  return updateConfig(cluster, req.machine, (config) => {
    const metadata = { ...config.metadata, ...req.set };
    for (const key of req.remove) delete metadata[key];
    return { ...config, metadata };
  });
}

/** DrainMachine / UndrainMachine: sets the drained flag; the leader moves units off. */
export function setDrained(
  cluster: ApiCluster,
  req: DrainMachineRequest,
  drained: boolean,
): Promise<MachineStatus> {
  return updateConfig(cluster, req.machine, (config) => ({ ...config, drained }));
}

/** Read-modify-write of machine-metadata/<id>, compare-and-swap, then the machine's status. */
async function updateConfig(
  cluster: ApiCluster,
  query: string,
  change: (config: MachineConfig) => MachineConfig,
): Promise<MachineStatus> {
  const { store, mirror } = cluster;
  await fresh(cluster);
  const id = resolveMachine(knownMachines(mirror), query);
  const key = store.keys.machineMetadata(id);
  await retryOnConflict(cluster, async () => {
    const current = mirror.configs.get(id);
    const before: MachineConfig = current?.value ?? { machine: id, metadata: {}, drained: false };
    const after = change({ ...before, machine: id });
    const json = codecs['machine-metadata'].encode(after);
    if (json === codecs['machine-metadata'].encode(before)) return; // nothing changes
    const res = await atomicTxn(store, (b) =>
      current === undefined
        ? b.putIfAbsent(key, json)
        : b.putIfModRevision(key, json, current.modRevision),
    );
    await settle(mirror, res.revision);
  });
  return machineStatus(cluster, id);
}

/**
 * One machine's status from the mirror: O(units placed on it). A machine that is gone and
 * recorded as lost shows its last record and `lost`.
 */
export function machineStatus(cluster: ApiCluster, id: string): MachineStatus {
  const { mirror, definitions } = cluster;
  const live = mirror.machines.get(id)?.value;
  const lost = live === undefined ? mirror.lostMachines.get(id)?.value : undefined;
  const machine = live ?? lost?.machine;
  const config = mirror.configs.get(id)?.value;
  const placed = mirror.placementsOn.get(id);
  // Summed as numbers (exact far beyond any machine's size), converted once.
  let cpu = 0;
  let memory = 0;
  let tasks = 0;
  for (const name of placed?.keys() ?? []) {
    const unit = mirror.units.get(name);
    const def = unit === undefined ? undefined : definitions.shared(unit.value);
    if (def === undefined || isInvalidUnit(def)) continue;
    cpu += def.service.resources.cpuMillicores;
    memory += def.service.resources.memoryBytes;
    tasks += def.service.resources.tasks;
  }
  const reserved: Resources = {
    cpuMillicores: BigInt(Math.round(cpu)),
    memoryBytes: BigInt(Math.round(memory)),
    tasks: BigInt(Math.round(tasks)),
  };
  return {
    ...(machine === undefined ? {} : { machine: { ...machine, id } }),
    metadata: mergedMetadata(machine, config),
    drained: config?.drained ?? false,
    units: placed?.size ?? 0,
    reserved,
    ...(lost === undefined ? {} : { lost }),
  };
}

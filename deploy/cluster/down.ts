/**
 * `flotilla cluster down`: agents first (SIGTERM: each stops its units and deregisters), then
 * the schedulers, then etcd; then whatever an agent that died hard may have left (containers,
 * shims, cgroups, mounts), the namespaces and the bridge. It ends by looking for leftovers
 * and fails, naming them, when it finds any.
 */
import { rm } from 'node:fs/promises';
import { unmountUnder } from '../../agent/runtime/mounts.js';
import { cleanMachine, findLeftovers } from './cleanup.js';
import { releaseClusterQuota } from './cpu-quota.js';
import { deleteAgentNetns, deleteBridge } from './network.js';
import { stopProcess } from './proc.js';
import {
  ClusterError,
  readRecord,
  writeRecord,
  type ClusterRecord,
  type ProcessRole,
} from './state.js';

/** How long each kind of process gets between SIGTERM and SIGKILL. */
export const STOP_GRACE_MS: Readonly<Record<ProcessRole, number>> = {
  // An agent stops its units one by one, each with its own TimeoutStopSec.
  agent: 60_000,
  scheduler: 20_000,
  registry: 10_000,
  etcd: 20_000,
};

/** What {@link clusterDown} did. */
export interface DownResult {
  /** Processes that ignored SIGTERM and were SIGKILLed. */
  readonly killed: readonly string[];
  /** Whether the directory was removed (`purge`). */
  readonly purged: boolean;
}

async function stopRole(record: ClusterRecord, role: ProcessRole): Promise<string[]> {
  const procs = record.processes.filter((p) => p.role === role);
  const killed = await Promise.all(
    procs.map((p) => stopProcess(p, 'SIGTERM', STOP_GRACE_MS[role])),
  );
  await writeRecord(record);
  return procs.filter((_, i) => killed[i] === true).map((p) => p.name);
}

/**
 * Stops every process of `record` in order and removes what the cluster put on the host.
 * Throws `leftover` listing anything that is still there afterwards.
 */
export async function stopAll(record: ClusterRecord): Promise<string[]> {
  const killed = [
    ...(await stopRole(record, 'agent')),
    ...(await stopRole(record, 'scheduler')),
    ...(await stopRole(record, 'registry')),
    ...(await stopRole(record, 'etcd')),
  ];
  for (const agent of record.agents) await cleanMachine(agent);
  for (const agent of record.agents) {
    if (agent.netns !== undefined) await deleteAgentNetns(agent);
  }
  if (record.network !== undefined) await deleteBridge(record.network);
  await unmountUnder(record.dir);
  await releaseClusterQuota(record);
  const left = await findLeftovers(record);
  if (left.length > 0) {
    throw new ClusterError('leftover', `left behind after down:\n  ${left.join('\n  ')}`);
  }
  return killed;
}

/**
 * Stops the cluster in `dir`. Keeps the directory (logs, machine ids for the next `up`)
 * unless `purge`. A directory without a cluster is a `no-cluster` error.
 */
export async function clusterDown(
  dir: string,
  opts: { purge?: boolean } = {},
): Promise<DownResult> {
  const record = await readRecord(dir);
  if (record === undefined) {
    throw new ClusterError('no-cluster', `no cluster in ${dir} (nothing to stop)`);
  }
  const killed = await stopAll(record);
  if (opts.purge === true) await rm(record.dir, { recursive: true, force: true });
  return { killed, purged: opts.purge === true };
}

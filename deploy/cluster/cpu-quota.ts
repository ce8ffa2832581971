/**
 * The local cluster on a slower host: with `UpOptions.cpuQuota`, etcd, every scheduler and
 * every agent run in a cgroup of their own under one group per cluster, each limited to that
 * share of one core (testkit/cpu-quota.ts). A process joins its group before it execs, so a
 * restarted member or agent (`restart`, the chaos suite's kills) is throttled the same way;
 * `down` moves what is left to the root cgroup and removes the groups.
 */
import { CpuQuota } from '../../testkit/cpu-quota.js';
import type { ClusterRecord, ProcessRecord } from './state.js';

/** Makes the cluster's group and records it in `record.cpuQuota`. */
export async function createClusterQuota(record: ClusterRecord, fraction: number): Promise<void> {
  const quota = await CpuQuota.create({ fraction, label: record.name });
  record.cpuQuota = { group: quota.path, fraction: quota.fraction, periodUs: quota.periodUs };
}

/** The command prefix that puts `proc` in its own group; [] without a quota (or a registry). */
export async function quotaPrefix(record: ClusterRecord, proc: ProcessRecord): Promise<string[]> {
  const q = record.cpuQuota;
  if (q === undefined || proc.role === 'registry') return [];
  return CpuQuota.attach(q.group, q.fraction, q.periodUs).prefix(proc.name);
}

/** Removes the cluster's groups once its processes are stopped (safe when there are none). */
export async function releaseClusterQuota(record: ClusterRecord): Promise<void> {
  const q = record.cpuQuota;
  if (q !== undefined) await CpuQuota.attach(q.group, q.fraction, q.periodUs).release();
}

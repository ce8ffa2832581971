/**
 * ListSchedulers: every replica that advertises itself (`schedulers/<id>`, each under its own
 * lease: scheduler/replica.ts), read from this replica's mirror, with which one leads (the
 * election key's `info.replica`) and how far each one's mirror was behind etcd at its last
 * check. Any replica answers for all of them.
 */
import type {
  ListSchedulersResponse,
  SchedulerReplicaStatus,
} from '../../proto/flotilla/v1/machines.js';
import { readLeader } from '../leader/leadership.js';
import { fresh, type ApiCluster } from './reads.js';

/** The most replicas one answer lists; a real cluster runs a handful. */
export const MAX_LISTED_SCHEDULERS = 1_000;

/** ListSchedulers; see machines.proto. */
export async function listSchedulers(cluster: ApiCluster): Promise<ListSchedulersResponse> {
  await fresh(cluster);
  const { mirror } = cluster;
  const revision = mirror.revision;
  const leader = await readLeader(cluster.store);
  const leaderId = leader?.info['replica'];
  const schedulers: SchedulerReplicaStatus[] = [];
  for (const entry of mirror.schedulers.values()) {
    if (schedulers.length === MAX_LISTED_SCHEDULERS) break;
    schedulers.push({
      replica: entry.value,
      leader: leaderId !== undefined && entry.value.id === leaderId,
    });
  }
  schedulers.sort((a, b) => compare(a.replica?.name ?? '', b.replica?.name ?? ''));
  return { schedulers, revision };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

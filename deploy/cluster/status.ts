/**
 * `flotilla cluster status`: every process of the cluster, whether it runs, and for agents
 * whether their machine is registered in etcd; when etcd answers, a line on the schedulers:
 * which replica leads and whether each is in sync (the replicas' own records).
 */
import type { SchedulerReplica } from '../../proto/flotilla/v1/records.js';
import { readLeader } from '../../scheduler/leader/leadership.js';
import { codecs, openStore } from '../../store/index.js';
import { clusterStoreOptions } from './credentials.js';
import { etcdUrlOf, registeredMachines } from './launch.js';
import { isRunning } from './proc.js';
import { ClusterError, readRecord, type ClusterRecord } from './state.js';

/** One line of `status`. */
export interface ProcessStatus {
  readonly name: string;
  readonly pid: number | undefined;
  readonly running: boolean;
  /** What it serves: etcd's URL, a scheduler's API, an agent's machine id and address. */
  readonly detail: string;
  readonly logPath: string;
}

/** The cluster's state as `status` shows it. */
export interface ClusterStatus {
  readonly record: ClusterRecord;
  readonly processes: readonly ProcessStatus[];
  /** True when every recorded process runs. */
  readonly allRunning: boolean;
  /** The schedulers as etcd shows them; undefined when etcd does not answer. */
  readonly schedulers?: SchedulersSeen;
}

/** The scheduler replicas that advertise themselves, and which one leads. */
export interface SchedulersSeen {
  readonly replicas: readonly SchedulerReplica[];
  /** The leader's name; undefined while none leads. */
  readonly leader: string | undefined;
}

/** Reads the replicas' records and the election from etcd. */
export async function schedulersSeen(record: ClusterRecord): Promise<SchedulersSeen> {
  const store = openStore(clusterStoreOptions(record));
  try {
    const dir = store.keys.dir('scheduler');
    const { items } = await store.list(dir);
    const replicas = items.flatMap((kv) => {
      try {
        return [codecs.scheduler.decode(kv.key, kv.value)];
      } catch {
        return []; // a corrupt record: the schedulers' logs say so
      }
    });
    replicas.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { replicas, leader: (await readLeader(store))?.name };
  } finally {
    store.close();
  }
}

/** One line: who leads and whether every replica is in sync. */
export function formatSchedulers(seen: SchedulersSeen): string {
  const { replicas, leader } = seen;
  if (replicas.length === 0) return 'schedulers: none runs, so no unit is placed';
  const behind = replicas.filter((r) => r.lagRevisions > 0n);
  const sync =
    behind.length === 0
      ? replicas.length === 1
        ? 'in sync with etcd'
        : `all ${replicas.length} in sync with etcd`
      : `${behind.map((r) => `${r.name} ${r.lagRevisions} revisions behind`).join(', ')}`;
  const who =
    leader === undefined
      ? `none leads at this moment (an election among ${replicas.length} is under way)`
      : `${leader} leads`;
  return `schedulers: ${who}; ${sync} (flotctl list-schedulers)`;
}

/** Reads the record in `dir` and checks each process; `no-cluster` when there is none. */
export async function clusterStatus(dir: string): Promise<ClusterStatus> {
  const record = await readRecord(dir);
  if (record === undefined) throw new ClusterError('no-cluster', `no cluster in ${dir}`);
  const etcd = record.processes.find((p) => p.role === 'etcd');
  const registered =
    etcd !== undefined && (await isRunning(etcd))
      ? await registeredMachines(record).catch(() => undefined)
      : undefined;
  const schedulers =
    registered === undefined ? undefined : await schedulersSeen(record).catch(() => undefined);
  const processes: ProcessStatus[] = [];
  for (const proc of record.processes) {
    let detail = '';
    if (proc.role === 'etcd') detail = etcdUrlOf(proc);
    if (proc.role === 'registry') detail = record.registry?.addr ?? '';
    if (proc.role === 'scheduler') {
      detail = `API ${record.apiAddresses[Number(proc.name.split('-')[1]) - 1] ?? '?'}`;
    }
    if (proc.role === 'agent') {
      const agent = record.agents.find((a) => `agent-${a.index}` === proc.name);
      if (agent !== undefined) {
        const reg =
          registered === undefined
            ? ''
            : registered.has(agent.machineId)
              ? ' registered'
              : ' not registered';
        detail = `machine ${agent.machineId.slice(0, 12)} ${agent.ip}${agent.netns ? ` netns ${agent.netns}` : ''}${reg}`;
      }
    }
    const running = await isRunning(proc);
    processes.push({
      name: proc.name,
      pid: running ? proc.pid : undefined,
      running,
      detail,
      logPath: proc.logPath,
    });
  }
  return {
    record,
    processes,
    allRunning: processes.length > 0 && processes.every((p) => p.running),
    ...(schedulers === undefined ? {} : { schedulers }),
  };
}

/** The status as a table, with a header naming the cluster and its directory. */
export function formatStatus(status: ClusterStatus): string {
  const { record } = status;
  const net =
    record.network === undefined
      ? 'loopback'
      : `netns, bridge ${record.network.bridge} ${record.network.subnet}`;
  const rows = status.processes.map((p) => [
    p.name,
    p.running ? 'running' : 'stopped',
    p.pid === undefined ? '-' : String(p.pid),
    p.detail,
  ]);
  const header = ['PROCESS', 'STATE', 'PID', 'DETAIL'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [
    `cluster ${record.name} in ${record.dir} (${net}, driver ${record.driver}, logs in ${record.dir}/logs)`,
    line(header),
    ...rows.map(line),
    ...(status.schedulers === undefined ? [] : [formatSchedulers(status.schedulers)]),
    '',
  ].join('\n');
}

/**
 * The local cluster's record, `<dir>/cluster.json`: what `up` created (network, machine ids,
 * ports) and which processes it started (pid plus the kernel's start time, so a recycled pid
 * is never mistaken for ours). `down` and `status` read it; `down` keeps the file (without
 * pids) so the next `up` reuses the machine ids and the network.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** What a recorded process is. */
export type ProcessRole = 'etcd' | 'registry' | 'scheduler' | 'agent';

/** One process `up` started, with everything needed to start it again. */
export interface ProcessRecord {
  /** `etcd`, `scheduler-1`, `agent-2`: unique in the cluster. */
  readonly name: string;
  readonly role: ProcessRole;
  /** The program and its arguments, exactly as spawned (nsenter first for an agent in a netns). */
  readonly command: readonly string[];
  /** stdout and stderr are appended here. */
  readonly logPath: string;
  /** The pid while it runs (undefined once stopped by `down`). */
  pid?: number | undefined;
  /** /proc/<pid>/stat start time (clock ticks since boot) when it was spawned. */
  startTime?: string | undefined;
}

/** One machine of the cluster: an agent and, in netns mode, its namespace. */
export interface AgentRecord {
  /** 1-based, fixes the name (`agent-<n>`), namespace and address. */
  readonly index: number;
  /** Generated once, kept across `down` and `up`. */
  readonly machineId: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** The address the machine registers (its own in netns mode, else 127.0.0.1). */
  readonly ip: string;
  /** host:port of its Logs service. */
  readonly logsListen: string;
  /** Its network namespace (netns mode only). */
  readonly netns?: string;
  /** The host end of its veth pair (netns mode only). */
  readonly veth?: string;
  /** Its state directory (units and their logs). */
  readonly stateDir: string;
}

/** The bridge and /24 of netns mode. */
export interface NetworkRecord {
  /** 0-254: the third octet of the subnet and the bridge's number. */
  readonly index: number;
  readonly bridge: string;
  /** The bridge's address, where etcd listens for the agents. */
  readonly hostIp: string;
  /** e.g. 10.213.7.0/24 */
  readonly subnet: string;
}

/** One more etcd member: its ports and client URLs (see `ClusterRecord.etcd`). */
export interface EtcdMemberRecord {
  readonly clientPort: number;
  readonly peerPort: number;
  readonly endpoint: string;
  readonly agentEndpoint: string;
}

/** Every etcd member's client URL, member 1 first: for the host, or for the agents. */
export function etcdEndpoints(record: ClusterRecord, forAgents = false): string[] {
  const members = [record.etcd, ...(record.etcd.extraMembers ?? [])];
  return members.map((m) => (forAgents ? m.agentEndpoint : m.endpoint));
}

/** Everything `up` decided and started. */
export interface ClusterRecord {
  readonly version: 1;
  readonly name: string;
  /** Absolute cluster directory. */
  readonly dir: string;
  /** `netns`: each agent its own host on a bridge (root with iproute2); else plain loopback. */
  readonly mode: 'netns' | 'loopback';
  readonly network?: NetworkRecord;
  readonly driver: 'runc' | 'process';
  readonly prefix: string;
  readonly etcd: {
    readonly clientPort: number;
    readonly peerPort: number;
    /** Client URL for processes on the host. */
    readonly endpoint: string;
    /** Client URL for agents (the bridge address in netns mode). */
    readonly agentEndpoint: string;
    /**
     * Members beyond the first, in a multi-member etcd (`etcdExtraMembers`); absent for one
     * etcd. The fields above are member 1's; {@link etcdEndpoints} lists them all.
     */
    readonly extraMembers?: readonly EtcdMemberRecord[];
  };
  /** The schedulers' API addresses, host:port. */
  readonly apiAddresses: readonly string[];
  /** The schedulers' HTTP listeners, host:port, one per scheduler; absent or empty: none. */
  readonly httpAddresses?: readonly string[];
  /** The image registry, host:port as agents reach it; absent without docker-registry. */
  readonly registry?: { readonly addr: string };
  /** netns mode: every agent's Logs port; loopback mode: agent n listens on this + n. */
  readonly agentPort: number;
  /** Flags every agent gets besides its own (lease TTL, log level), for `add-agent`. */
  readonly agentFlags: readonly string[];
  /**
   * etcd's own auth is on: root, the schedulers and each machine have their own etcd user,
   * credentials in `<dir>/credentials/` (credentials.ts). Absent in records of older `up`s.
   */
  readonly etcdAuth?: boolean;
  /**
   * etcd, the schedulers and the agents each run in a cgroup of their own under `group` (a
   * cgroup v1 `cpu` directory) with `fraction` of `periodUs` (`UpOptions.cpuQuota`); `down`
   * removes the group. Absent: no quota.
   */
  cpuQuota?: { readonly group: string; readonly fraction: number; readonly periodUs: number };
  agents: AgentRecord[];
  processes: ProcessRecord[];
}

/** The record's path in a cluster directory. */
export function recordPath(dir: string): string {
  return join(dir, 'cluster.json');
}

/** The record, or undefined when `dir` holds none. Throws on a corrupt file. */
export async function readRecord(dir: string): Promise<ClusterRecord | undefined> {
  let text: string;
  try {
    text = await readFile(recordPath(dir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const parsed = JSON.parse(text) as ClusterRecord;
  if (parsed.version !== 1) {
    throw new ClusterError('bad-record', `${recordPath(dir)}: unknown record version`);
  }
  return parsed;
}

/** Writes the record atomically (temp file + rename), so a crash never leaves half a file. */
export async function writeRecord(record: ClusterRecord): Promise<void> {
  await mkdir(record.dir, { recursive: true });
  const path = recordPath(record.dir);
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(record, null, 2)}\n`);
  await rename(tmp, path);
}

/** The process named `name`, or a `no-such-process` error listing the names there are. */
export function findProcess(record: ClusterRecord, name: string): ProcessRecord {
  const proc = record.processes.find((p) => p.name === name);
  if (proc === undefined) {
    const names = record.processes.map((p) => p.name).join(', ');
    throw new ClusterError('no-such-process', `no process "${name}" in the cluster (${names})`);
  }
  return proc;
}

/** Stable codes of {@link ClusterError}. */
export type ClusterErrorCode =
  /** `up` on a directory whose cluster still runs. */
  | 'already-up'
  /** `down`/`status` on a directory without a cluster. */
  | 'no-cluster'
  | 'bad-record'
  | 'no-such-process'
  /** A required program (etcd, runc, ip) is missing. */
  | 'missing-program'
  /** A port the cluster needs is taken. */
  | 'port-taken'
  /** A process exited or never became ready. */
  | 'start-failed'
  /** `ip` failed. */
  | 'network'
  /** Something was left behind after `down`. */
  | 'leftover';

/** A failure of `flotilla cluster`; the message says what to do. */
export class ClusterError extends Error {
  override readonly name = 'ClusterError';

  constructor(
    readonly code: ClusterErrorCode,
    message: string,
  ) {
    super(message);
  }
}

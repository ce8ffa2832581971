/**
 * How each process of the local cluster is started and when it counts as ready: etcd answers
 * `/health`, a scheduler accepts connections on its API port, an agent's machine record is in
 * etcd. A process that exits while being waited for fails the wait at once, with its log tail.
 */
import { get as httpGet } from 'node:http';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../store/index.js';
import { agentCredentialFile, clusterStoreOptions, credentialPath } from './credentials.js';
import { quotaPrefix } from './cpu-quota.js';
import { inNetns } from './network.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRunning, logTail, spawnDetached } from './proc.js';
import {
  ClusterError,
  etcdEndpoints,
  type AgentRecord,
  type ClusterRecord,
  type ProcessRecord,
} from './state.js';

/** The repository root (this file is dist/deploy/cluster/launch.js once built). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** bin/flotilla, which the schedulers and agents run. */
export const FLOTILLA_BIN = join(REPO_ROOT, 'bin', 'flotilla');

/**
 * Metadata of machine n, varied so the examples have somewhere to go: regions eu and us,
 * several zones, workers and an edge, ssd and hdd. Beyond the table the pattern repeats.
 */
const METADATA_PATTERN: readonly Readonly<Record<string, string>>[] = [
  { region: 'eu', zone: 'eu-1', role: 'worker', disk: 'ssd' },
  { region: 'us', zone: 'us-1', role: 'worker', disk: 'hdd' },
  { region: 'us', zone: 'us-2', role: 'edge', disk: 'ssd' },
  { region: 'eu', zone: 'eu-2', role: 'worker', disk: 'hdd' },
  { region: 'eu', zone: 'eu-1', role: 'edge', disk: 'ssd' },
  { region: 'us', zone: 'us-1', role: 'worker', disk: 'ssd' },
];

/** Machine n's (1-based) metadata from the pattern. */
export function patternMetadata(n: number): Record<string, string> {
  return { ...(METADATA_PATTERN[(n - 1) % METADATA_PATTERN.length] ?? {}) };
}

/** `k=v,k=v` (the agent's --metadata form), keys sorted. */
export function formatMetadata(metadata: Readonly<Record<string, string>>): string {
  return Object.keys(metadata)
    .sort()
    .map((k) => `${k}=${metadata[k] ?? ''}`)
    .join(',');
}

/** The environment of every daemon: ours without FLOTILLA_*, so only the flags decide. */
export function daemonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FLOTILLA_')) env[k] = v;
  return env;
}

/**
 * etcd: data under `<dir>/etcd`, clients on loopback (and the bridge address in netns mode).
 * With extra members, every member is `etcd-<m>` with data under `<dir>/etcd-<m>`, all in one
 * initial cluster; `flags` go to every member.
 */
export function etcdProcesses(record: ClusterRecord, flags: readonly string[] = []) {
  const members = [record.etcd, ...(record.etcd.extraMembers ?? [])];
  const single = members.length === 1;
  const memberName = (m: number) =>
    single ? `flotilla-${record.name}` : `flotilla-${record.name}-${m}`;
  const peerUrl = (port: number) => `http://127.0.0.1:${port}`;
  const initialCluster = members.map((m, i) => `${memberName(i + 1)}=${peerUrl(m.peerPort)}`);
  return members.map((member, i): ProcessRecord => {
    const name = single ? 'etcd' : `etcd-${i + 1}`;
    const clientUrls = [`http://127.0.0.1:${member.clientPort}`];
    if (record.network !== undefined) {
      clientUrls.push(`http://${record.network.hostIp}:${member.clientPort}`);
    }
    return {
      name,
      role: 'etcd',
      command: [
        'etcd',
        `--name=${memberName(i + 1)}`,
        `--data-dir=${join(record.dir, name)}`,
        `--listen-client-urls=${clientUrls.join(',')}`,
        `--advertise-client-urls=${clientUrls.join(',')}`,
        `--listen-peer-urls=${peerUrl(member.peerPort)}`,
        `--initial-advertise-peer-urls=${peerUrl(member.peerPort)}`,
        `--initial-cluster=${initialCluster.join(',')}`,
        '--initial-cluster-state=new',
        '--logger=zap',
        ...flags,
      ],
      logPath: join(record.dir, 'logs', `${name}.log`),
    };
  });
}

/** The loopback client URL an etcd process listens on (from its command line). */
export function etcdUrlOf(proc: ProcessRecord): string {
  const flag = proc.command.find((a) => a.startsWith('--listen-client-urls='));
  const url = flag?.slice('--listen-client-urls='.length).split(',')[0];
  if (url === undefined) throw new ClusterError('bad-record', `${proc.name} has no client URL`);
  return url;
}

/** Scheduler i (1-based), its API on 127.0.0.1 at the i-th API port. */
export function schedulerProcess(
  record: ClusterRecord,
  i: number,
  flags: readonly string[],
): ProcessRecord {
  const listen = record.apiAddresses[i - 1];
  if (listen === undefined) throw new ClusterError('bad-record', `no API port for scheduler ${i}`);
  return {
    name: `scheduler-${i}`,
    role: 'scheduler',
    command: [
      process.execPath,
      FLOTILLA_BIN,
      'scheduler',
      `--etcd-endpoints=${etcdEndpoints(record).join(',')}`,
      `--prefix=${record.prefix}`,
      `--listen=${listen}`,
      ...(record.httpAddresses?.[i - 1] === undefined
        ? []
        : [`--http-listen=${record.httpAddresses[i - 1]}`]),
      `--name=${record.name}-scheduler-${i}`,
      `--agent-token-file=${credentialPath(record, 'agent-token')}`,
      `--secrets-key-file=${credentialPath(record, 'secrets.key')}`,
      ...(record.etcdAuth === true
        ? [`--etcd-user-file=${credentialPath(record, 'scheduler.etcd')}`]
        : []),
      ...flags,
    ],
    logPath: join(record.dir, 'logs', `scheduler-${i}.log`),
  };
}

/**
 * The agent of `agent`'s machine, inside its namespace in netns mode, where it also gets a
 * UTS namespace of its own named like the network namespace (`flot-local-1`), as a real host
 * has its own hostname: its units (runc containers inherit it) see that name, not the host's.
 */
export function agentProcess(record: ClusterRecord, agent: AgentRecord): ProcessRecord {
  const prefix =
    agent.netns === undefined ? [] : [...inNetns(agent.netns), ...ownHostname(agent.netns)];
  return {
    name: `agent-${agent.index}`,
    role: 'agent',
    command: [
      ...prefix,
      process.execPath,
      FLOTILLA_BIN,
      'agent',
      `--machine-id=${agent.machineId}`,
      `--metadata=${formatMetadata(agent.metadata)}`,
      `--public-ip=${agent.ip}`,
      `--etcd-endpoints=${etcdEndpoints(record, true).join(',')}`,
      `--prefix=${record.prefix}`,
      `--driver=${record.driver}`,
      `--state-dir=${agent.stateDir}`,
      `--logs-listen=${agent.logsListen}`,
      // In its own namespace each machine answers DNS on its address, port 53, as a host would.
      ...(agent.netns === undefined ? [] : [`--dns-listen=${agent.ip}:53`]),
      `--logs-token-file=${credentialPath(record, 'agent-token')}`,
      `--secrets-key-file=${credentialPath(record, 'secrets.key')}`,
      ...(record.etcdAuth === true
        ? [`--etcd-user-file=${credentialPath(record, agentCredentialFile(agent))}`]
        : []),
      ...record.agentFlags,
    ],
    logPath: join(record.dir, 'logs', `agent-${agent.index}.log`),
  };
}

/**
 * A command prefix that runs the rest in a new UTS namespace named `hostname`: unshare and
 * the shell exec in place, so the recorded pid stays the agent's.
 */
export function ownHostname(hostname: string): string[] {
  return [
    'unshare',
    '--uts',
    '--',
    '/bin/sh',
    '-c',
    'echo "$0" > /proc/sys/kernel/hostname && exec "$@"',
    hostname,
  ];
}

/**
 * Starts `proc` detached from the cluster directory, with {@link daemonEnv}; under the
 * cluster's CPU quota when it has one (cpu-quota.ts).
 */
export async function launch(record: ClusterRecord, proc: ProcessRecord): Promise<void> {
  const prefix = await quotaPrefix(record, proc);
  await spawnDetached(proc, { cwd: record.dir, env: daemonEnv(), prefix });
}

/** Throws `port-taken` unless `host:port` can be bound now. */
export async function checkPortFree(host: string, port: number, what: string): Promise<void> {
  const free = await new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
  if (!free) {
    throw new ClusterError(
      'port-taken',
      `${host}:${port} (${what}) is in use: is another cluster up? Pick another port (see --help)`,
    );
  }
}

async function failIfExited(proc: ProcessRecord, waitingFor: string): Promise<void> {
  if (await isRunning(proc)) return;
  const tail = await logTail(proc.logPath);
  throw new ClusterError(
    'start-failed',
    `${proc.name} exited while waiting for ${waitingFor}; ${proc.logPath} ends:\n${tail}`,
  );
}

/** Polls `check` until it is true; fails early when one of `procs` exits. */
async function waitFor(
  what: string,
  procs: readonly ProcessRecord[],
  timeoutMs: number,
  check: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    for (const proc of procs) await failIfExited(proc, what);
    if (Date.now() > deadline) {
      const tails = await Promise.all(
        procs.map(async (p) => `--- ${p.logPath}\n${await logTail(p.logPath, 10)}`),
      );
      throw new ClusterError('start-failed', `timed out waiting for ${what}\n${tails.join('\n')}`);
    }
    await sleep(200);
  }
}

function httpHealthy(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpGet(`${url}/health`, { timeout: 1_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('"true"')));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

function accepts(address: string): Promise<boolean> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon);
  const port = Number(address.slice(colon + 1));
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 1_000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Waits until the etcd member `proc` reports itself healthy (a member needs its quorum). */
export function waitEtcd(proc: ProcessRecord, timeoutMs: number) {
  return waitFor(`${proc.name} to be healthy`, [proc], timeoutMs, () =>
    httpHealthy(etcdUrlOf(proc)),
  );
}

/** Waits until the scheduler's API port accepts connections. */
export function waitScheduler(address: string, proc: ProcessRecord, timeoutMs: number) {
  return waitFor(`${proc.name}'s API on ${address}`, [proc], timeoutMs, () => accepts(address));
}

/** The machine ids registered in etcd now. */
export async function registeredMachines(record: ClusterRecord): Promise<Set<string>> {
  const store = openStore(clusterStoreOptions(record));
  try {
    const { items } = await store.list(store.keys.dir('machine'));
    return new Set(items.map((kv) => kv.key.slice(store.keys.dir('machine').length)));
  } finally {
    store.close();
  }
}

/** Waits until every agent in `agents` has its machine record in etcd. */
export function waitRegistered(
  record: ClusterRecord,
  agents: readonly AgentRecord[],
  procs: readonly ProcessRecord[],
  timeoutMs: number,
): Promise<void> {
  return waitFor(`${agents.length} machine(s) to register`, procs, timeoutMs, async () => {
    const ids = await registeredMachines(record).catch(() => new Set<string>());
    return agents.every((a) => ids.has(a.machineId));
  });
}

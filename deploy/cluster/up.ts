/**
 * `flotilla cluster up`, `add-agent` and `restart`: build the network, start etcd, the
 * schedulers and the agents, and wait until every machine has registered. The record is
 * written before anything starts and after every process, so a `down` after any failure
 * finds everything; `up` itself tears down what it started when it fails.
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { getuid } from 'node:process';
import { join } from 'node:path';
import { stopAll } from './down.js';
import {
  hasRegistry,
  prepareRegistry,
  pushExample,
  registryProcess,
  registryFlagsFor,
  waitRegistry,
} from './registry.js';
import {
  agentProcess,
  checkPortFree,
  etcdProcesses,
  etcdUrlOf,
  launch,
  patternMetadata,
  schedulerProcess,
  waitEtcd,
  waitRegistered,
  waitScheduler,
} from './launch.js';
import {
  agentNetwork,
  canUseNetns,
  createAgentNetns,
  createBridge,
  MAX_AGENTS,
  networkFor,
  pickNetworkIndex,
} from './network.js';
import {
  metadataFlag,
  resolveUpOptions,
  UP_DEFAULTS,
  type ResolvedUpOptions,
  type UpOptions,
} from './options.js';
import { isRunning, stopProcess, which } from './proc.js';
import { addMachineUser, setupEtcdAuth, writeCredentials } from './credentials.js';
import { canFence, controlPlanePorts, fenceUnits } from './firewall.js';
import { createClusterQuota } from './cpu-quota.js';
import {
  ClusterError,
  findProcess,
  readRecord,
  writeRecord,
  type AgentRecord,
  type ClusterRecord,
  type NetworkRecord,
} from './state.js';

/** How long each process may take to become ready (etcd, a scheduler's API). */
const START_TIMEOUT_MS = 30_000;

/** A fresh machine id: 32 hex digits, like /etc/machine-id. */
function newMachineId(): string {
  return randomBytes(16).toString('hex');
}

async function chooseMode(opts: ResolvedUpOptions): Promise<'netns' | 'loopback'> {
  if (opts.network === 'loopback') return 'loopback';
  const ok = await canUseNetns();
  if (opts.network === 'netns' && !ok) {
    throw new ClusterError(
      'missing-program',
      '--network=netns needs root, iproute2 (ip) and nsenter; use --network=loopback',
    );
  }
  return ok ? 'netns' : 'loopback';
}

async function chooseDriver(opts: ResolvedUpOptions): Promise<'runc' | 'process'> {
  const usable = getuid?.() === 0 && (await which('runc')) !== undefined;
  if (opts.driver === 'runc' && !usable) {
    throw new ClusterError('missing-program', '--driver=runc needs root and runc on PATH');
  }
  if (opts.driver !== 'auto') return opts.driver;
  return usable ? 'runc' : 'process';
}

/** Machine n's record; the id is `previous`'s when an earlier `up` made one. */
function agentRecord(
  base: Pick<ClusterRecord, 'name' | 'dir' | 'network' | 'agentPort'>,
  n: number,
  metadata: Record<string, string>,
  previous: AgentRecord | undefined,
): AgentRecord {
  const stateDir = join(base.dir, 'agents', String(n));
  const machineId = previous?.machineId ?? newMachineId();
  if (base.network === undefined) {
    const ip = '127.0.0.1';
    return {
      index: n,
      machineId,
      metadata,
      ip,
      logsListen: `${ip}:${base.agentPort + n}`,
      stateDir,
    };
  }
  if (n > MAX_AGENTS) throw new ClusterError('network', `at most ${MAX_AGENTS} agents fit a /24`);
  const { netns, veth, ip } = agentNetwork(base.name, base.network, n);
  return {
    index: n,
    machineId,
    metadata,
    ip,
    logsListen: `${ip}:${base.agentPort}`,
    netns,
    veth,
    stateDir,
  };
}

async function checkPorts(record: ClusterRecord): Promise<void> {
  for (const m of [record.etcd, ...(record.etcd.extraMembers ?? [])]) {
    await checkPortFree('127.0.0.1', m.clientPort, 'etcd client port');
    await checkPortFree('127.0.0.1', m.peerPort, 'etcd peer port');
  }
  for (const address of record.apiAddresses) {
    await checkPortFree('127.0.0.1', Number(address.split(':')[1]), 'scheduler API');
  }
  for (const address of record.httpAddresses ?? []) {
    await checkPortFree('127.0.0.1', Number(address.split(':')[1]), 'scheduler HTTP listener');
  }
  if (record.mode === 'loopback') {
    for (const a of record.agents) {
      await checkPortFree('127.0.0.1', Number(a.logsListen.split(':')[1]), `${a.index}'s logs`);
    }
  }
}

/** Builds the record `up` will realise, reusing the machine ids of an earlier `up` in `dir`. */
async function plan(opts: ResolvedUpOptions, previous: ClusterRecord | undefined) {
  const mode = await chooseMode(opts);
  const driver = await chooseDriver(opts);
  let network: NetworkRecord | undefined;
  if (mode === 'netns') {
    network = networkFor(opts.netIndex ?? previous?.network?.index ?? (await pickNetworkIndex()));
  }
  const agentPort =
    opts.agentPort ??
    (mode === 'netns' ? UP_DEFAULTS.netnsAgentPort : UP_DEFAULTS.loopbackAgentPortBase);
  const agentFlags = [`--log-level=${opts.logLevel}`];
  if (opts.agentLeaseTtl !== undefined) agentFlags.push(`--lease-ttl=${opts.agentLeaseTtl}`);
  const etcdHost = network?.hostIp ?? '127.0.0.1';
  const registry =
    opts.registryPort > 0 && (await hasRegistry())
      ? { addr: `${etcdHost}:${opts.registryPort}` }
      : undefined;
  if (registry !== undefined) agentFlags.push(...registryFlagsFor(registry.addr));
  const record: ClusterRecord = {
    version: 1,
    name: opts.name,
    dir: opts.dir,
    mode,
    ...(network !== undefined && { network }),
    driver,
    prefix: '/flotilla/',
    etcd: {
      clientPort: opts.etcdPort,
      peerPort: opts.etcdPeerPort,
      endpoint: `http://127.0.0.1:${opts.etcdPort}`,
      agentEndpoint: `http://${etcdHost}:${opts.etcdPort}`,
      ...(opts.etcdExtraMembers.length > 0 && {
        extraMembers: opts.etcdExtraMembers.map((m) => ({
          ...m,
          endpoint: `http://127.0.0.1:${m.clientPort}`,
          agentEndpoint: `http://${etcdHost}:${m.clientPort}`,
        })),
      }),
    },
    apiAddresses: opts.apiPorts.map((p) => `127.0.0.1:${p}`),
    httpAddresses: opts.httpPorts.map((p) => `127.0.0.1:${p}`),
    ...(registry !== undefined && { registry }),
    agentPort,
    agentFlags,
    etcdAuth: opts.etcdAuth,
    agents: [],
    processes: [],
  };
  for (let n = 1; n <= opts.agents; n++) {
    const old = previous?.agents.find((a) => a.index === n);
    const metadata = opts.agentMetadata[n - 1] ?? old?.metadata ?? patternMetadata(n);
    record.agents.push(agentRecord(record, n, { ...metadata }, old));
  }
  return record;
}

/**
 * Starts a local cluster in `opts.dir` and resolves once every agent has registered. Rejects
 * with a {@link ClusterError} (having stopped what it started) when it cannot.
 */
export async function clusterUp(
  options: UpOptions = {},
  say: (line: string) => void = () => undefined,
): Promise<ClusterRecord> {
  const opts = resolveUpOptions(options);
  const previous = await readRecord(opts.dir);
  if (previous !== undefined) {
    for (const p of previous.processes) {
      if (await isRunning(p)) {
        throw new ClusterError(
          'already-up',
          `the cluster in ${opts.dir} is running (${p.name}, pid ${p.pid}); run "flotilla cluster down --dir ${opts.dir}" first`,
        );
      }
    }
  }
  if ((await which('etcd')) === undefined) {
    throw new ClusterError(
      'missing-program',
      'etcd is not on PATH: install it (Debian/Ubuntu: apt-get install etcd-server)',
    );
  }
  const record = await plan(opts, previous);
  await checkPorts(record);
  await mkdir(join(record.dir, 'logs'), { recursive: true });
  await writeCredentials(record);
  await writeRecord(record);
  try {
    await start(record, opts, say);
  } catch (err) {
    say('start failed: stopping what was started');
    await stopAll(record).catch(() => undefined);
    throw err;
  }
  return record;
}

async function start(
  record: ClusterRecord,
  opts: ResolvedUpOptions,
  say: (line: string) => void,
): Promise<void> {
  if (opts.cpuQuota !== undefined) {
    await createClusterQuota(record, opts.cpuQuota);
    await writeRecord(record);
    say(`cpu quota: ${opts.cpuQuota} of a core each for etcd, schedulers and agents`);
  }
  if (record.network !== undefined) {
    say(`network: bridge ${record.network.bridge} ${record.network.subnet}`);
    await createBridge(record.network);
    for (const agent of record.agents) await createAgentNetns(record.network, agent);
    if (await canFence()) {
      for (const agent of record.agents) await fenceUnits(record, agent);
      say(`firewall: units cannot connect to ports ${controlPlanePorts(record).join(',')}`);
    } else say('firewall: iptables not installed; units can connect to etcd (auth still applies)');
  }
  // Every member starts before any is waited for: a member is healthy only with its quorum.
  const members = etcdProcesses(record, opts.etcdFlags);
  for (const etcd of members) {
    record.processes.push(etcd);
    await launch(record, etcd);
    await writeRecord(record);
    say(`${etcd.name}: ${etcdUrlOf(etcd)} (pid ${etcd.pid})`);
  }
  for (const etcd of members) await waitEtcd(etcd, START_TIMEOUT_MS);
  if (record.etcdAuth === true) {
    await setupEtcdAuth(record);
    say('etcd: auth on (root, flotilla-scheduler, one user per machine)');
  }
  if (record.registry !== undefined) await startRegistry(record, record.registry.addr, say);

  const schedulerFlags = [`--log-level=${opts.logLevel}`];
  if (record.registry !== undefined) {
    schedulerFlags.push(...registryFlagsFor(record.registry.addr));
  }
  if (opts.electionTtl !== undefined) schedulerFlags.push(`--election-ttl=${opts.electionTtl}`);
  const schedulers = record.apiAddresses.map((_, i) =>
    schedulerProcess(record, i + 1, schedulerFlags),
  );
  for (const proc of schedulers) {
    record.processes.push(proc);
    await launch(record, proc);
    await writeRecord(record);
  }
  for (const [i, proc] of schedulers.entries()) {
    const address = record.apiAddresses[i] ?? '';
    await waitScheduler(address, proc, START_TIMEOUT_MS);
    say(`${proc.name}: API ${address} (pid ${proc.pid})`);
  }
  const agents = record.agents.map((agent) => agentProcess(record, agent));
  for (const proc of agents) {
    record.processes.push(proc);
    await launch(record, proc);
    await writeRecord(record);
  }
  await waitRegistered(record, record.agents, agents, opts.readyTimeoutMs);
  for (const [i, agent] of record.agents.entries()) {
    say(`agent-${agent.index}: machine ${agent.machineId} ${agent.ip} (pid ${agents[i]?.pid})`);
  }
}

/** Starts the registry beside etcd (see registry.ts) and pushes the example image to it. */
async function startRegistry(
  record: ClusterRecord,
  addr: string,
  say: (line: string) => void,
): Promise<void> {
  const [host = '', port = ''] = addr.split(':');
  await checkPortFree(host, Number(port), 'registry port (--registry-port)');
  await prepareRegistry(record, addr);
  const proc = registryProcess(record);
  record.processes.push(proc);
  await launch(record, proc);
  await writeRecord(record);
  await waitRegistry(addr, proc, START_TIMEOUT_MS);
  say(`registry: ${addr} (pid ${proc.pid})`);
  say(await pushExample(record, addr));
}

/**
 * Starts one more agent in a running cluster (a machine joining later) and resolves with its
 * record once it has registered. Metadata defaults to the next in the pattern.
 */
export async function addAgent(
  dir: string,
  metadata?: string | Record<string, string>,
  timeoutMs = UP_DEFAULTS.readyTimeoutMs,
): Promise<AgentRecord> {
  const record = await requireRecord(dir);
  const n = Math.max(0, ...record.agents.map((a) => a.index)) + 1;
  const md =
    metadata === undefined
      ? patternMetadata(n)
      : typeof metadata === 'string'
        ? metadataFlag(metadata)
        : metadata;
  const agent = agentRecord(record, n, md, undefined);
  if (record.network !== undefined) {
    await createAgentNetns(record.network, agent);
    if (await canFence()) await fenceUnits(record, agent);
  } else await checkPortFree('127.0.0.1', Number(agent.logsListen.split(':')[1]), 'agent logs');
  record.agents.push(agent);
  await writeCredentials(record);
  await addMachineUser(record, agent);
  const proc = agentProcess(record, agent);
  record.processes.push(proc);
  await launch(record, proc);
  await writeRecord(record);
  await waitRegistered(record, [agent], [proc], timeoutMs);
  return agent;
}

/**
 * Stops the named process (SIGTERM, SIGKILL after `graceMs`) if it runs and starts it again
 * with the command it was started with; waits until it is ready (agents: registered).
 */
export async function restartProcess(dir: string, name: string, graceMs = 30_000): Promise<void> {
  const record = await requireRecord(dir);
  const proc = findProcess(record, name);
  await stopProcess(proc, 'SIGTERM', graceMs);
  await writeRecord(record);
  await launch(record, proc);
  await writeRecord(record);
  if (proc.role === 'etcd') await waitEtcd(proc, START_TIMEOUT_MS);
  if (proc.role === 'registry' && record.registry !== undefined) {
    await waitRegistry(record.registry.addr, proc, START_TIMEOUT_MS);
  }
  if (proc.role === 'scheduler') {
    const i = Number(proc.name.split('-')[1]);
    await waitScheduler(record.apiAddresses[i - 1] ?? '', proc, START_TIMEOUT_MS);
  }
  if (proc.role === 'agent') {
    const agent = record.agents.find((a) => `agent-${a.index}` === proc.name);
    if (agent !== undefined) await waitRegistered(record, [agent], [proc], START_TIMEOUT_MS * 2);
  }
}

/** The record in `dir`, or a `no-cluster` error. */
export async function requireRecord(dir: string): Promise<ClusterRecord> {
  const record = await readRecord(dir);
  if (record === undefined) {
    throw new ClusterError('no-cluster', `no cluster in ${dir} (run "flotilla cluster up" first)`);
  }
  return record;
}

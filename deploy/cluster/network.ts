/**
 * netns mode's network: one bridge `flotbr<N>` with 10.213.N.1/24 on the host, and per agent
 * a network namespace `flot-<cluster>-<n>` joined to it by a veth pair (`flotv<N>-<n>` on the
 * host, `eth0` inside) with 10.213.N.(10+n), its loopback up. No route leaves the /24: the
 * machines reach the host (etcd) and the host reaches them (their Logs service), nothing else.
 */
import { getuid } from 'node:process';
import { ClusterError, type AgentRecord, type NetworkRecord } from './state.js';
import { runTool, which } from './proc.js';

/** The first two octets of every cluster subnet. */
export const SUBNET_PREFIX = '10.213';
/** Agent n's host part is this plus n. */
const HOST_OFFSET = 10;
/** Most agents a /24 leaves room for. */
export const MAX_AGENTS = 244;

/** The network of cluster number `index` (0-254). */
export function networkFor(index: number): NetworkRecord {
  return {
    index,
    bridge: `flotbr${index}`,
    hostIp: `${SUBNET_PREFIX}.${index}.1`,
    subnet: `${SUBNET_PREFIX}.${index}.0/24`,
  };
}

/** Agent n's namespace, host-side veth and address. Interface names fit Linux's 15 bytes. */
export function agentNetwork(
  cluster: string,
  net: NetworkRecord,
  n: number,
): { netns: string; veth: string; ip: string } {
  return {
    netns: `flot-${cluster}-${n}`,
    veth: `flotv${net.index}-${n}`,
    ip: `${SUBNET_PREFIX}.${net.index}.${HOST_OFFSET + n}`,
  };
}

/** True when this process may build namespaces: root, with `ip` (iproute2) and `nsenter`. */
export async function canUseNetns(): Promise<boolean> {
  if (getuid?.() !== 0) return false;
  if ((await which('ip')) === undefined || (await which('nsenter')) === undefined) return false;
  return (await runTool('ip', ['netns', 'list'])).code === 0;
}

async function ip(args: readonly string[], okIf?: RegExp): Promise<string> {
  const res = await runTool('ip', args);
  if (res.code !== 0 && !(okIf?.test(res.stderr) ?? false)) {
    throw new ClusterError('network', `ip ${args.join(' ')}: ${res.stderr.trim()}`);
  }
  return res.stdout;
}

/** True when a network interface called `name` exists. */
export async function linkExists(name: string): Promise<boolean> {
  return (await runTool('ip', ['link', 'show', 'dev', name])).code === 0;
}

/** Names of the network namespaces `ip netns` knows. */
export async function listNetns(): Promise<string[]> {
  const res = await runTool('ip', ['netns', 'list']);
  if (res.code !== 0) return [];
  return res.stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

/**
 * The lowest cluster number whose bridge does not exist and whose /24 no interface uses, so
 * two clusters on one host never share a subnet.
 */
export async function pickNetworkIndex(): Promise<number> {
  const links = await ip(['-o', 'link', 'show']);
  const addrs = await ip(['-o', 'addr', 'show']);
  for (let i = 0; i < 255; i++) {
    const net = networkFor(i);
    if (links.includes(`: ${net.bridge}:`) || links.includes(`: ${net.bridge}@`)) continue;
    if (addrs.includes(` ${SUBNET_PREFIX}.${i}.`)) continue;
    return i;
  }
  throw new ClusterError('network', `no free ${SUBNET_PREFIX}.N.0/24 left for a bridge`);
}

/** Creates the bridge with the host's address and brings it up; an existing one is reused. */
export async function createBridge(net: NetworkRecord): Promise<void> {
  if (!(await linkExists(net.bridge))) {
    await ip(['link', 'add', net.bridge, 'type', 'bridge']);
  }
  await ip(['addr', 'add', `${net.hostIp}/24`, 'dev', net.bridge], /File exists/);
  await ip(['link', 'set', net.bridge, 'up']);
}

/** Deletes the bridge (its veths go with their namespaces); absent is fine. */
export async function deleteBridge(net: NetworkRecord): Promise<void> {
  if (await linkExists(net.bridge)) await ip(['link', 'delete', net.bridge]);
}

/**
 * The agent's namespace, wired to the bridge, with its address and loopback up. A namespace
 * of that name left by an earlier crash is replaced.
 */
export async function createAgentNetns(net: NetworkRecord, agent: AgentRecord): Promise<void> {
  const { netns, veth } = requireNetns(agent);
  await deleteAgentNetns(agent);
  await ip(['netns', 'add', netns]);
  await ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
  await ip(['link', 'set', veth, 'master', net.bridge]);
  await ip(['link', 'set', veth, 'up']);
  await ip(['-n', netns, 'addr', 'add', `${agent.ip}/24`, 'dev', 'eth0']);
  await ip(['-n', netns, 'link', 'set', 'eth0', 'up']);
  await ip(['-n', netns, 'link', 'set', 'lo', 'up']);
}

/** Removes the agent's namespace and its veth pair; absent is fine. */
export async function deleteAgentNetns(agent: AgentRecord): Promise<void> {
  const { netns, veth } = requireNetns(agent);
  if ((await listNetns()).includes(netns)) await ip(['netns', 'delete', netns]);
  // Deleting the namespace deletes eth0 and with it the host end, unless a process pinned it.
  if (await linkExists(veth)) await ip(['link', 'delete', veth], /Cannot find device/);
}

function requireNetns(agent: AgentRecord): { netns: string; veth: string } {
  if (agent.netns === undefined || agent.veth === undefined) {
    throw new ClusterError('bad-record', `agent-${agent.index} has no network namespace`);
  }
  return { netns: agent.netns, veth: agent.veth };
}

/** The command prefix that runs a program inside the agent's namespace (network only). */
export function inNetns(netns: string): string[] {
  // nsenter execs the program in place (same pid) and, unlike `ip netns exec`, leaves the
  // mount namespace alone: /sys/fs/cgroup stays visible to runc.
  return ['nsenter', `--net=/run/netns/${netns}`, '--'];
}

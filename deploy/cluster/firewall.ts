/**
 * Keeps units away from the control plane in netns mode: inside each machine's network
 * namespace, one iptables rule rejects TCP to etcd's client and peer ports and to the agents'
 * Logs port from every process in the `flotilla` cgroup tree, which is where runc puts every
 * container (`/flotilla/<machine>/<unit>`, in the unified hierarchy too). The agent itself is
 * outside that tree and keeps its connections. The rule lives and dies with the namespace.
 * The same rule on a real host is in docs/operations.md.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runTool, which, type ToolResult } from './proc.js';
import { ClusterError, type AgentRecord, type ClusterRecord } from './state.js';
import { inNetns } from './network.js';

/** The ports units may not connect to: every etcd member's client and peer port, Logs. */
export function controlPlanePorts(record: ClusterRecord): number[] {
  const members = [record.etcd, ...(record.etcd.extraMembers ?? [])];
  const ports = members.flatMap((m) => [m.clientPort, m.peerPort]);
  return [...new Set([...ports, record.agentPort])].sort((a, b) => a - b);
}

/** The cgroup the rule matches: runc puts every container under it. */
const UNITS_CGROUP = 'flotilla';

/** The iptables arguments of the rule (after `iptables`). */
export function fenceRule(ports: readonly number[]): string[] {
  return [
    ...['-p', 'tcp', '-m', 'multiport', '--dports', ports.join(',')],
    ...['-m', 'cgroup', '--path', UNITS_CGROUP, '-j', 'REJECT', '--reject-with', 'tcp-reset'],
  ];
}

/** True when iptables is installed (the rule is then applied; otherwise `up` says so). */
export async function canFence(): Promise<boolean> {
  return (await which('iptables')) !== undefined;
}

/** Adds the rule to the OUTPUT chain of `agent`'s namespace (netns mode only). */
export async function fenceUnits(record: ClusterRecord, agent: AgentRecord): Promise<void> {
  if (agent.netns === undefined) return;
  await ensureCgroupV2(UNITS_CGROUP);
  const res = await insertRule(agent.netns, fenceRule(controlPlanePorts(record)));
  if (res.code !== 0) {
    throw new ClusterError(
      'network',
      `iptables in ${agent.netns}: ${res.stderr.trim()} (the xt_cgroup match needs a kernel with cgroup v2 mounted)`,
    );
  }
}

/** Inserts `rule` (iptables arguments after the chain) first in `netns`'s OUTPUT chain. */
export function insertRule(netns: string, rule: readonly string[]): Promise<ToolResult> {
  const [program = '', ...prefix] = inNetns(netns);
  return runTool(program, [...prefix, 'iptables', '-w', '5', '-I', 'OUTPUT', ...rule]);
}

/**
 * Creates cgroup `name` in every cgroup v2 hierarchy mounted (`/sys/fs/cgroup` on a v2 host,
 * `/sys/fs/cgroup/unified` on a hybrid one), unless it exists. The kernel resolves the
 * rule's `--path` when the rule is added and refuses a group that does not exist yet, which
 * it does not on a host where no container ran since boot: `up` failed there. The group stays
 * after `down`, empty, as runc leaves it: another cluster on the host may be matching it.
 */
export async function ensureCgroupV2(name: string): Promise<void> {
  const mounts = await readFile('/proc/self/mounts', 'utf8').catch(() => '');
  for (const line of mounts.split('\n')) {
    const [, dir, type] = line.split(' ');
    if (type !== 'cgroup2' || dir === undefined) continue;
    await mkdir(join(dir, name), { recursive: true }).catch(() => undefined);
  }
}

/**
 * Keeps units away from the control plane in netns mode: inside each machine's network
 * namespace, one iptables rule rejects TCP to etcd's client and peer ports and to the agents'
 * Logs port from every process in the `flotilla` cgroup tree, which is where runc puts every
 * container (`/flotilla/<machine>/<unit>`, in the unified hierarchy too). The agent itself is
 * outside that tree and keeps its connections. The rule lives and dies with the namespace.
 * The same rule on a real host is in docs/operations.md.
 */
import { runTool, which } from './proc.js';
import { ClusterError, type AgentRecord, type ClusterRecord } from './state.js';
import { inNetns } from './network.js';

/** The ports units may not connect to: every etcd member's client and peer port, Logs. */
export function controlPlanePorts(record: ClusterRecord): number[] {
  const members = [record.etcd, ...(record.etcd.extraMembers ?? [])];
  const ports = members.flatMap((m) => [m.clientPort, m.peerPort]);
  return [...new Set([...ports, record.agentPort])].sort((a, b) => a - b);
}

/** The iptables arguments of the rule (after `iptables`). */
export function fenceRule(ports: readonly number[]): string[] {
  return [
    ...['-p', 'tcp', '-m', 'multiport', '--dports', ports.join(',')],
    ...['-m', 'cgroup', '--path', 'flotilla', '-j', 'REJECT', '--reject-with', 'tcp-reset'],
  ];
}

/** True when iptables is installed (the rule is then applied; otherwise `up` says so). */
export async function canFence(): Promise<boolean> {
  return (await which('iptables')) !== undefined;
}

/** Adds the rule to the OUTPUT chain of `agent`'s namespace (netns mode only). */
export async function fenceUnits(record: ClusterRecord, agent: AgentRecord): Promise<void> {
  if (agent.netns === undefined) return;
  const [program = '', ...prefix] = inNetns(agent.netns);
  const args = [
    ...prefix,
    'iptables',
    '-w',
    '5',
    '-I',
    'OUTPUT',
    ...fenceRule(controlPlanePorts(record)),
  ];
  const res = await runTool(program, args);
  if (res.code !== 0) {
    throw new ClusterError(
      'network',
      `iptables in ${agent.netns}: ${res.stderr.trim()} (the xt_cgroup match needs a kernel with cgroup v2 mounted)`,
    );
  }
}

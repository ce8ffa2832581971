/**
 * `flotilla cluster` options: one interface with every default documented, one function that
 * fills them in, and the flag parser the command line goes through.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDurationMs, UsageError } from '../../daemon/options.js';

/** Options of `clusterUp`. Every field is optional; {@link resolveUpOptions} fills defaults. */
export interface UpOptions {
  /** Cluster directory: record, logs, etcd data, agent state. Default `./.flotilla/cluster`. */
  readonly dir?: string;
  /** Names the namespaces (`flot-<name>-<n>`). Letters, digits, `_`; default `local`. */
  readonly name?: string;
  /** Number of agents (machines). Default 3. */
  readonly agents?: number;
  /** Metadata of agents 1, 2, ... in order; agents beyond the list follow the pattern. */
  readonly agentMetadata?: readonly Readonly<Record<string, string>>[];
  /** `auto` (default): netns when root with iproute2, else loopback. */
  readonly network?: 'auto' | 'netns' | 'loopback';
  /** Cluster number N: bridge `flotbr<N>`, subnet 10.213.N.0/24. Default: the first free. */
  readonly netIndex?: number;
  /** etcd client and peer ports. Defaults 2379, 2380. */
  readonly etcdPort?: number;
  readonly etcdPeerPort?: number;
  /**
   * Further etcd members, each with its client and peer port on 127.0.0.1: with two, a
   * 3-member etcd cluster (processes `etcd-1`..`etcd-3`) instead of one `etcd`. Default none.
   */
  readonly etcdExtraMembers?: readonly EtcdMemberPorts[];
  /** Extra flags for every etcd member (e.g. `--quota-backend-bytes=...`). Default none. */
  readonly etcdFlags?: readonly string[];
  /** The schedulers' API ports on 127.0.0.1, one scheduler each. Default [4700, 4710]. */
  readonly apiPorts?: readonly number[];
  /**
   * The schedulers' HTTP listeners (`--http-listen`: console, JSON API, metrics) on
   * 127.0.0.1, one per scheduler. Default [4646, 4656] when `apiPorts` is left to its
   * default too, else none (a caller that picks its own API ports picks these as well).
   */
  readonly httpPorts?: readonly number[];
  /**
   * The agents' Logs port: in netns mode every agent listens on it at its own address
   * (default 4701); in loopback mode agent n uses this + n (default 4720: 4721, 4722, ...).
   */
  readonly agentPort?: number;
  /**
   * The image registry's port (at the bridge address in netns mode, else 127.0.0.1); 0: no
   * registry. Default 5000. Without docker-registry installed there is none either.
   */
  readonly registryPort?: number;
  /** `auto` (default): runc when root and runc is installed, else process. */
  readonly driver?: 'auto' | 'runc' | 'process';
  /** The agents' lease TTL (`--lease-ttl`), e.g. `10s`. Default: the agent's own. */
  readonly agentLeaseTtl?: string;
  /** The schedulers' election TTL (`--election-ttl`). Default: the scheduler's own. */
  readonly electionTtl?: string;
  /** Log level of the daemons. Default `info`. */
  readonly logLevel?: string;
  /** How long `up` waits for every agent to register. Default 60 s. */
  readonly readyTimeoutMs?: number;
  /**
   * etcd's own auth: a user per machine allowed only its own records, one for the schedulers,
   * credentials 0600 in `<dir>/credentials/`. Default true (`--etcd-auth=off` turns it off).
   */
  readonly etcdAuth?: boolean;
  /**
   * Run etcd, every scheduler and every agent (with its children) each under this share of
   * one core, in a cgroup v1 `cpu` quota of its own (testkit/cpu-quota.ts): a slower host,
   * for the chaos suite and benchmarks. Root and the v1 `cpu` controller only. Default none.
   */
  readonly cpuQuota?: number;
}

/** An extra etcd member's ports. */
export interface EtcdMemberPorts {
  readonly clientPort: number;
  readonly peerPort: number;
}

/** {@link UpOptions} with every default applied. */
export interface ResolvedUpOptions {
  readonly dir: string;
  readonly name: string;
  readonly agents: number;
  readonly agentMetadata: readonly Readonly<Record<string, string>>[];
  readonly network: 'auto' | 'netns' | 'loopback';
  readonly netIndex: number | undefined;
  readonly etcdPort: number;
  readonly etcdPeerPort: number;
  readonly etcdExtraMembers: readonly EtcdMemberPorts[];
  readonly etcdFlags: readonly string[];
  readonly apiPorts: readonly number[];
  /** One per scheduler, or empty: no HTTP listener. */
  readonly httpPorts: readonly number[];
  readonly agentPort: number | undefined;
  readonly registryPort: number;
  readonly driver: 'auto' | 'runc' | 'process';
  readonly agentLeaseTtl: string | undefined;
  readonly electionTtl: string | undefined;
  readonly logLevel: string;
  readonly readyTimeoutMs: number;
  readonly etcdAuth: boolean;
  readonly cpuQuota: number | undefined;
}

/** The defaults, in one place. */
export const UP_DEFAULTS = {
  dir: '.flotilla/cluster',
  name: 'local',
  agents: 3,
  etcdPort: 2379,
  etcdPeerPort: 2380,
  apiPorts: [4700, 4710],
  httpPorts: [4646, 4656],
  registryPort: 5000,
  netnsAgentPort: 4701,
  loopbackAgentPortBase: 4720,
  logLevel: 'info',
  readyTimeoutMs: 60_000,
} as const;

/** Fills in defaults and checks values; throws UsageError. `dir` becomes absolute. */
export function resolveUpOptions(opts: UpOptions = {}): ResolvedUpOptions {
  const name = opts.name ?? UP_DEFAULTS.name;
  if (!/^[A-Za-z0-9_]{1,12}$/.test(name)) {
    throw new UsageError(`--name=${name}: expected 1-12 letters, digits or _`);
  }
  const agents = opts.agents ?? UP_DEFAULTS.agents;
  if (!Number.isInteger(agents) || agents < 1 || agents > 200) {
    throw new UsageError(`--agents=${agents}: expected 1 to 200`);
  }
  const apiPorts = opts.apiPorts ?? UP_DEFAULTS.apiPorts;
  if (apiPorts.length === 0) throw new UsageError('--api-ports: at least one port');
  const httpPorts = opts.httpPorts ?? (opts.apiPorts === undefined ? UP_DEFAULTS.httpPorts : []);
  if (httpPorts.length !== 0 && httpPorts.length !== apiPorts.length) {
    throw new UsageError(
      `--http-ports: ${httpPorts.length} ports for ${apiPorts.length} schedulers; give one per scheduler (as many as --api-ports)`,
    );
  }
  if (opts.registryPort !== undefined && !(opts.registryPort >= 0 && opts.registryPort <= 65535)) {
    throw new UsageError(`--registry-port=${opts.registryPort}: expected 0 (none) to 65535`);
  }
  const extra = opts.etcdExtraMembers ?? [];
  if (extra.length !== 0 && extra.length !== 2 && extra.length !== 4) {
    throw new UsageError(`--etcd-members=${extra.length + 1}: expected 1, 3 or 5`);
  }
  const memberPorts = extra.flatMap((m) => [m.clientPort, m.peerPort]);
  for (const p of [
    opts.etcdPort,
    opts.etcdPeerPort,
    opts.agentPort,
    ...apiPorts,
    ...httpPorts,
    ...memberPorts,
  ]) {
    if (p !== undefined && (!Number.isInteger(p) || p < 1 || p > 65535)) {
      throw new UsageError(`port ${p}: expected 1-65535`);
    }
  }
  if (opts.netIndex !== undefined && !(opts.netIndex >= 0 && opts.netIndex <= 254)) {
    throw new UsageError(`--net=${opts.netIndex}: expected 0-254`);
  }
  for (const [flag, v] of [
    ['agent-lease-ttl', opts.agentLeaseTtl],
    ['election-ttl', opts.electionTtl],
  ] as const) {
    if (v !== undefined && parseDurationMs(v) === undefined) {
      throw new UsageError(`--${flag}=${v}: expected a duration such as 5s`);
    }
  }
  return {
    dir: resolve(opts.dir ?? UP_DEFAULTS.dir),
    name,
    agents,
    agentMetadata: opts.agentMetadata ?? [],
    network: opts.network ?? 'auto',
    netIndex: opts.netIndex,
    etcdPort: opts.etcdPort ?? UP_DEFAULTS.etcdPort,
    etcdPeerPort: opts.etcdPeerPort ?? UP_DEFAULTS.etcdPeerPort,
    etcdExtraMembers: extra,
    etcdFlags: opts.etcdFlags ?? [],
    apiPorts,
    httpPorts,
    agentPort: opts.agentPort,
    registryPort: opts.registryPort ?? UP_DEFAULTS.registryPort,
    driver: opts.driver ?? 'auto',
    agentLeaseTtl: opts.agentLeaseTtl,
    electionTtl: opts.electionTtl,
    logLevel: opts.logLevel ?? UP_DEFAULTS.logLevel,
    readyTimeoutMs: opts.readyTimeoutMs ?? UP_DEFAULTS.readyTimeoutMs,
    etcdAuth: opts.etcdAuth ?? true,
    cpuQuota: opts.cpuQuota,
  };
}

/** `flotilla cluster --help`. */
export const CLUSTER_USAGE = `Usage: flotilla cluster <up|down|status|add-agent|restart> [flags]

A local cluster on this host: one etcd, two schedulers and N agents, all background processes
that outlive the command, with logs, state and pids under one directory. As root with
iproute2 each agent is its own host: a network namespace flot-<name>-<n> on a bridge
flotbr<N> (10.213.N.0/24), running units as runc containers. Otherwise the agents are plain
processes on 127.0.0.1 running units as processes.

Commands:
  up                 start the cluster and wait until every machine has registered
  down               stop agents (their units stop), schedulers, then etcd; remove namespaces,
                     bridge, containers, cgroups and mounts
  status             each process and whether it runs (exit 3 when one does not)
  add-agent          start one more agent (a machine joining later)
  restart NAME       stop and start one process (etcd, scheduler-1, agent-2, ...)

Flags:
  --dir DIR               cluster directory (default ./.flotilla/cluster)
  -h, --help              show this help; "flotilla cluster COMMAND --help" shows that
                          command's flags
`;

/** Parsed `flotilla cluster` command line. */
export interface ClusterArgs {
  readonly command: string | undefined;
  readonly positionals: readonly string[];
  readonly up: UpOptions;
  readonly dir: string;
  readonly metadata: string | undefined;
  readonly purge: boolean;
  /** `up --no-hints`: the summary without the commands to try. */
  readonly noHints: boolean;
  readonly help: boolean;
}

const flags = {
  dir: { type: 'string' },
  agents: { type: 'string' },
  'agent-metadata': { type: 'string', multiple: true },
  name: { type: 'string' },
  network: { type: 'string' },
  net: { type: 'string' },
  'etcd-port': { type: 'string' },
  'etcd-peer-port': { type: 'string' },
  'etcd-members': { type: 'string' },
  'api-ports': { type: 'string' },
  'http-ports': { type: 'string' },
  'agent-port': { type: 'string' },
  'registry-port': { type: 'string' },
  driver: { type: 'string' },
  'agent-lease-ttl': { type: 'string' },
  'election-ttl': { type: 'string' },
  'log-level': { type: 'string' },
  'etcd-auth': { type: 'string' },
  metadata: { type: 'string' },
  purge: { type: 'boolean' },
  'no-hints': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function int(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`--${flag}=${v}: expected a whole number`);
  return n;
}

function oneOf<T extends string>(flag: string, v: string | undefined, allowed: readonly T[]) {
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) {
    throw new UsageError(`--${flag}=${v}: expected one of ${allowed.join(', ')}`);
  }
  return v as T;
}

/** `k=v,k=v` from a flag; a pair without a key is a UsageError. */
export function metadataFlag(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(',').map((p) => p.trim())) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`metadata "${pair}": expected key=value`);
    out[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return out;
}

/** Parses `flotilla cluster ...` (after `cluster`); throws UsageError. */
export function parseClusterArgs(argv: readonly string[]): ClusterArgs {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: flags, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const v = parsed.values;
  const [command, ...positionals] = parsed.positionals;
  const members = int('etcd-members', v['etcd-members']);
  if (members !== undefined && members < 1) {
    throw new UsageError(`--etcd-members=${members}: expected 1, 3 or 5`);
  }
  const clientBase = int('etcd-port', v['etcd-port']) ?? UP_DEFAULTS.etcdPort;
  const peerBase = int('etcd-peer-port', v['etcd-peer-port']) ?? UP_DEFAULTS.etcdPeerPort;
  const extraMembers = Array.from({ length: Math.max(0, (members ?? 1) - 1) }, (_, k) => ({
    clientPort: clientBase + 2 * (k + 1),
    peerPort: peerBase + 2 * (k + 1),
  }));
  const up: UpOptions = {
    ...(v.dir !== undefined && { dir: v.dir }),
    ...(v.name !== undefined && { name: v.name }),
    ...(v['agent-metadata'] !== undefined && {
      agentMetadata: v['agent-metadata'].map((text) => metadataFlag(text)),
    }),
    ...(v.agents !== undefined && { agents: int('agents', v.agents) ?? 0 }),
    ...(v.network !== undefined && {
      network: oneOf('network', v.network, ['auto', 'netns', 'loopback'] as const) ?? 'auto',
    }),
    ...(v.net !== undefined && { netIndex: int('net', v.net) ?? 0 }),
    ...(v['etcd-port'] !== undefined && { etcdPort: int('etcd-port', v['etcd-port']) ?? 0 }),
    ...(v['etcd-peer-port'] !== undefined && {
      etcdPeerPort: int('etcd-peer-port', v['etcd-peer-port']) ?? 0,
    }),
    ...(members !== undefined && members !== 1 && { etcdExtraMembers: extraMembers }),
    ...(v['api-ports'] !== undefined && {
      apiPorts: v['api-ports'].split(',').map((p) => int('api-ports', p.trim()) ?? 0),
    }),
    ...(v['http-ports'] !== undefined && {
      httpPorts: v['http-ports'].split(',').map((p) => int('http-ports', p.trim()) ?? 0),
    }),
    ...(v['agent-port'] !== undefined && { agentPort: int('agent-port', v['agent-port']) ?? 0 }),
    ...(v['registry-port'] !== undefined && {
      registryPort: int('registry-port', v['registry-port']) ?? 0,
    }),
    ...(v.driver !== undefined && {
      driver: oneOf('driver', v.driver, ['auto', 'runc', 'process'] as const) ?? 'auto',
    }),
    ...(v['agent-lease-ttl'] !== undefined && { agentLeaseTtl: v['agent-lease-ttl'] }),
    ...(v['election-ttl'] !== undefined && { electionTtl: v['election-ttl'] }),
    ...(v['log-level'] !== undefined && { logLevel: v['log-level'] }),
    ...(v['etcd-auth'] !== undefined && {
      etcdAuth: oneOf('etcd-auth', v['etcd-auth'], ['on', 'off'] as const) === 'on',
    }),
  };
  return {
    command,
    positionals,
    up,
    dir: resolve(v.dir ?? UP_DEFAULTS.dir),
    metadata: v.metadata,
    purge: v.purge === true,
    noHints: v['no-hints'] === true,
    help: v.help === true,
  };
}

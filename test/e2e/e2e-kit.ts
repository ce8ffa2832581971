/**
 * The end-to-end kit: a real local cluster (deploy/cluster: etcd, two schedulers, agents in
 * their own network namespaces running runc containers) per test file, driven through
 * bin/flotctl as a child process. Each file passes its own cluster name and network number
 * and gets free ports, so files running at once never share anything. The cluster is torn
 * down by `stop()` (call it in `test.after.always`), and by a watchdog if the test process
 * dies without calling it.
 */
import type { TestFn } from 'ava';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Socket } from 'node:net';
import { MachineLayout } from '../../agent/runtime/layout.js';
import { readLeader, type LeaderInfo } from '../../scheduler/leader/leadership.js';
import { openStore } from '../../store/index.js';
import {
  clusterDown,
  clusterUp,
  findLeftovers,
  FLOTILLA_BIN,
  REPO_ROOT,
  type ClusterRecord,
  type ProcessRecord,
} from '../../deploy/cluster/index.js';
import { readRecord } from '../../deploy/cluster/state.js';
import { clusterStoreOptions } from '../../deploy/cluster/credentials.js';
import { assertEventually, freePorts } from '../../testkit/index.js';
import { leaseNet, type NetLease } from '../../testkit/net-lease.js';
import { cpuQuotaFromEnv } from '../../testkit/cpu-quota.js';

/** bin/flotctl (needs the build). */
export const FLOTCTL = join(REPO_ROOT, 'bin', 'flotctl');
/** The project's copy of the example units. */
export const EXAMPLES = join(REPO_ROOT, 'deploy', 'examples');
/** The agents' lease TTL in these tests: short, so a killed machine is noticed quickly. */
export const LEASE_TTL_SECONDS = 4;
/** Generous bound for anything the cluster does on a loaded 2-core machine. */
export const SETTLE_MS = 60_000;

/** True when the e2e tests can run here: root (namespaces, runc). */
export const CAN_RUN = process.getuid?.() === 0;

/** A finished flotctl or flotilla run. */
export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `program args` to completion (at most 2 minutes); never rejects on a non-zero exit. */
export function runNode(script: string, args: readonly string[], env: NodeJS.ProcessEnv = {}) {
  return new Promise<Run>((resolve, reject) => {
    execFile(
      process.execPath,
      [script, ...args],
      { env: { ...process.env, ...env }, cwd: REPO_ROOT, timeout: 120_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err !== null && typeof err.code !== 'number') {
          reject(new Error(`${script} ${args.join(' ')}: ${err.message}\n${stderr}`));
          return;
        }
        resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr });
      },
    );
  });
}

/** A unit as `flotctl -o json list-units` shows it, boiled down to what tests compare. */
export interface UnitView {
  readonly name: string;
  readonly machine: string;
  readonly active: string;
  readonly sub: string;
  readonly pid: number;
  readonly current: string;
  readonly unscheduled: string;
}

/** The keys of a `flotctl -o json list-units` row these tests read (docs/cli.md). */
export interface ListUnitsRow {
  readonly unit: string;
  readonly machine: string | null;
  readonly active: string | null;
  readonly sub: string | null;
  readonly pid: number | null;
  readonly state: string;
  readonly reason: string | null;
  readonly hash: string | null;
  readonly runningHash: string | null;
  readonly health: string | null;
  readonly restarts: number | null;
}

/** Whether a unit runs on a machine: active/running and placed. */
export function isRunningView(u: UnitView | undefined): boolean {
  return u !== undefined && u.active === 'active' && u.sub === 'running' && u.machine !== '';
}

/**
 * One cluster for the calling test file: started in `test.before` (as root only; without root
 * `serial` skips the file's tests), stopped in `test.after.always`, logging anything it left
 * behind. `cluster()` throws when the cluster did not start.
 */
export function clusterForFile(test: TestFn, opts: E2EClusterOptions) {
  let cluster: E2ECluster | undefined;
  test.before(async () => {
    if (CAN_RUN) cluster = await E2ECluster.start(opts);
  });
  test.after.always(async (t) => {
    const left = await cluster?.stop();
    if (left !== undefined && left.length > 0) t.log(`left behind: ${left.join(', ')}`);
  });
  return {
    serial: CAN_RUN ? test.serial : test.serial.skip,
    cluster(): E2ECluster {
      if (cluster === undefined) throw new Error('the cluster did not start');
      return cluster;
    },
    /** The cluster, or undefined when it did not start (for after hooks). */
    clusterOrUndefined(): E2ECluster | undefined {
      return cluster;
    },
  };
}

/** Options of {@link E2ECluster.start}. */
export interface E2EClusterOptions {
  /**
   * Cluster name (namespaces flot-<name>-<n>) and network number (bridge flotbr<N>), each unique
   * per test file; another test run on this host holding the number gets a spare one, and the
   * name suffixed with it (testkit/net-lease.ts).
   */
  readonly name: string;
  readonly net: number;
  readonly agents?: number;
  readonly agentMetadata?: readonly Readonly<Record<string, string>>[];
  /** Start the image registry beside etcd (at the bridge address, port 5000). Default off. */
  readonly registry?: boolean;
  /** etcd members: 1 (default) or 3. */
  readonly etcdMembers?: 1 | 3;
  /** Scheduler replicas; default 2. */
  readonly schedulers?: number;
  /** Extra flags for every etcd member (e.g. a small `--quota-backend-bytes`). */
  readonly etcdFlags?: readonly string[];
  /**
   * etcd, schedulers and agents each at most this share of one core (a slower host;
   * testkit/cpu-quota.ts). Default: `FLOTILLA_CPU_QUOTA` when set, else none.
   */
  readonly cpuQuota?: number;
}

/** A running cluster and the ways tests talk to it. */
export class E2ECluster {
  private constructor(
    readonly dir: string,
    public record: ClusterRecord,
    private readonly watchdog: ChildProcess,
    private readonly lease?: NetLease,
  ) {}

  /** Starts the cluster; resolves once every agent has registered. */
  static async start(opts: E2EClusterOptions): Promise<E2ECluster> {
    const cpuQuota = opts.cpuQuota ?? cpuQuotaFromEnv();
    // The file's own network unless another test run on this host holds it.
    const lease = await leaseNet(opts.name, opts.net);
    const dir = await mkdtemp(join(tmpdir(), `flotilla-e2e-${lease.name}-`));
    const watchdog = startWatchdog(dir);
    const schedulers = opts.schedulers ?? 2;
    const extra = ((opts.etcdMembers ?? 1) - 1) * 2;
    const ports = await freePorts(2 + extra + 2 * schedulers);
    const [etcdPort, etcdPeerPort] = ports;
    const memberPorts = ports.slice(2, 2 + extra);
    const apiPorts = ports.slice(2 + extra, 2 + extra + schedulers);
    // Each scheduler's HTTP listener (the console, the JSON API), as `cluster up` starts it.
    const httpPorts = ports.slice(2 + extra + schedulers);
    const etcdExtraMembers = Array.from({ length: extra / 2 }, (_, k) => ({
      clientPort: memberPorts[2 * k] ?? 0,
      peerPort: memberPorts[2 * k + 1] ?? 0,
    }));
    try {
      const record = await clusterUp({
        dir,
        name: lease.name,
        netIndex: lease.net,
        agents: opts.agents ?? 3,
        ...(opts.agentMetadata !== undefined && { agentMetadata: opts.agentMetadata }),
        ...(etcdPort !== undefined && { etcdPort }),
        ...(etcdPeerPort !== undefined && { etcdPeerPort }),
        apiPorts,
        httpPorts,
        etcdExtraMembers,
        ...(opts.etcdFlags !== undefined && { etcdFlags: opts.etcdFlags }),
        network: 'netns',
        registryPort: opts.registry === true ? 5000 : 0,
        driver: 'runc',
        agentLeaseTtl: `${LEASE_TTL_SECONDS}s`,
        electionTtl: '3s',
        readyTimeoutMs: 90_000,
        ...(cpuQuota !== undefined && { cpuQuota }),
      });
      return new E2ECluster(dir, record, watchdog, lease);
    } catch (err) {
      watchdog.kill('SIGKILL');
      await clusterDown(dir, { purge: true }).catch(() => undefined);
      await lease.release();
      throw err;
    }
  }

  /** A cluster someone else started in `dir` (e.g. `flotilla cluster up` run as a child). */
  static async attach(dir: string): Promise<E2ECluster> {
    const record = await readRecord(dir);
    if (record === undefined) throw new Error(`no cluster in ${dir}`);
    return new E2ECluster(dir, record, startWatchdog(dir));
  }

  private api: string | undefined;

  /** host:port of the API flotctl talks to: scheduler-1's unless {@link useApi} changed it. */
  get endpoint(): string {
    return this.api ?? this.record.apiAddresses[0] ?? '';
  }

  /** Points flotctl at another scheduler (e.g. when scheduler-1 was killed). */
  useApi(address: string): void {
    this.api = address;
  }

  /** The elected scheduler, read from etcd; undefined while there is none. */
  async leader(): Promise<LeaderInfo | undefined> {
    const store = this.openStore();
    try {
      return await readLeader(store);
    } finally {
      store.close();
    }
  }

  /** A store on every etcd member of the cluster; close it after use. */
  openStore() {
    // As root when the cluster's etcd has auth on (deploy/cluster/credentials.ts).
    return openStore(clusterStoreOptions(this.record));
  }

  /** Re-reads cluster.json (after add-agent or a restart changed pids). */
  async refresh(): Promise<ClusterRecord> {
    this.record = (await readRecord(this.dir)) ?? this.record;
    return this.record;
  }

  /** The recorded process called `name` (etcd, scheduler-1, agent-2). */
  process(name: string): ProcessRecord {
    const proc = this.record.processes.find((p) => p.name === name);
    if (proc === undefined) throw new Error(`no process ${name}`);
    return proc;
  }

  /** Runs bin/flotctl against scheduler `api` (default the first). */
  flotctl(args: readonly string[], api = this.endpoint): Promise<Run> {
    return runNode(FLOTCTL, args, { FLOTCTL_ENDPOINT: api });
  }

  /** Like {@link flotctl} but fails the test with the output unless it exits 0. */
  async ok(args: readonly string[]): Promise<Run> {
    const run = await this.flotctl(args);
    if (run.code !== 0) {
      throw new Error(`flotctl ${args.join(' ')} exited ${run.code}:\n${run.stdout}${run.stderr}`);
    }
    return run;
  }

  /** Every listed unit (`flotctl -o json list-units`), by name (a Global unit: its first row). */
  async units(glob?: string): Promise<Map<string, UnitView>> {
    const out = new Map<string, UnitView>();
    for (const row of await this.listUnits(glob)) {
      if (!out.has(row.name)) out.set(row.name, row);
    }
    return out;
  }

  /** Each machine's copy of the Global unit `name` (`flotctl -o json list-units`), by machine. */
  async copies(name: string): Promise<UnitView[]> {
    return (await this.listUnits(name)).filter((u) => u.name === name && u.machine !== '');
  }

  /** `flotctl -o json list-units`: one flat row per unit, a Global unit's copies each one. */
  private async listUnits(glob: string | undefined): Promise<UnitView[]> {
    const run = await this.ok(['-o', 'json', 'list-units', ...(glob === undefined ? [] : [glob])]);
    return (JSON.parse(run.stdout) as ListUnitsRow[]).map((r) => ({
      name: r.unit,
      machine: r.machine ?? '',
      active: r.active ?? '',
      sub: r.sub ?? '',
      pid: r.pid ?? 0,
      current: r.state,
      unscheduled: r.reason ?? '',
    }));
  }

  /** Polls {@link units} until `check` holds; returns the listing it held for. */
  async waitUnits(
    message: string,
    check: (units: Map<string, UnitView>) => boolean,
    timeoutMs = SETTLE_MS,
  ): Promise<Map<string, UnitView>> {
    let last = new Map<string, UnitView>();
    try {
      return await assertEventually(
        async () => {
          last = await this.units();
          return check(last) ? last : false;
        },
        { timeoutMs, intervalMs: 500, message },
      );
    } catch (err) {
      const dump = [...last.values()].map((u) => JSON.stringify(u)).join('\n');
      throw new Error(`${(err as Error).message}\nlast listing:\n${dump}`);
    }
  }

  /** Writes a unit file into a temporary directory and returns its path (for submit). */
  async unitFile(name: string, text: string): Promise<string> {
    const dir = join(this.dir, 'unit-files');
    await mkdir(dir, { recursive: true });
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  }

  /** Machines holding a placement of `unit`, read from etcd (several for a Global unit). */
  async placementsOf(unit: string): Promise<string[]> {
    const store = this.openStore();
    try {
      const { items } = await store.list(store.keys.dir('placement'));
      return items
        .map((kv) => store.keys.parse(kv.key))
        .filter((k) => k?.kind === 'placement' && k.name === unit)
        .map((k) => k?.machine ?? '')
        .sort();
    } finally {
      store.close();
    }
  }

  /** runc containers on this host that run `unit` for machine `machineId`. */
  async runsContainer(machineId: string, unit: string): Promise<boolean> {
    const agent = this.record.agents.find((a) => a.machineId === machineId);
    if (agent === undefined) return false;
    const id = new MachineLayout(agent.stateDir, machineId).containerId(unit);
    const res = await new Promise<string>((resolve) =>
      execFile('runc', ['list', '--format', 'json'], (_err, stdout) => resolve(stdout)),
    );
    const list = JSON.parse(res.trim() === '' ? 'null' : res) as
      { id: string; status: string }[] | null;
    return (list ?? []).some((ct) => ct.id === id && ct.status === 'running');
  }

  /** Machine id of agent n. */
  machineOf(n: number): string {
    const agent = this.record.agents.find((a) => a.index === n);
    if (agent === undefined) throw new Error(`no agent ${n}`);
    return agent.machineId;
  }

  /** Agent index (1-based) of a machine id. */
  agentIndexOf(machineId: string): number {
    return this.record.agents.find((a) => a.machineId === machineId)?.index ?? 0;
  }

  /** Metadata of the machine `machineId`. */
  metadataOf(machineId: string): Readonly<Record<string, string>> {
    return this.record.agents.find((a) => a.machineId === machineId)?.metadata ?? {};
  }

  /** Stops the cluster and removes its directory; resolves with what was left behind. */
  async stop(): Promise<string[]> {
    const record = (await readRecord(this.dir)) ?? this.record;
    try {
      await clusterDown(this.dir, { purge: true });
    } catch {
      // findLeftovers below says what went wrong
    }
    const left = await findLeftovers(record);
    this.watchdog.kill('SIGKILL');
    await this.lease?.release();
    return left;
  }
}

/**
 * A shell that runs `flotilla cluster down --purge` on the cluster directory once its stdin
 * closes, i.e. when this test process dies in any way (even SIGKILL, where no hook runs).
 */
function startWatchdog(dir: string): ChildProcess {
  const script = `read _ignored; exec "$0" "$1" cluster down --purge --dir "$2"`;
  const dog = spawn('sh', ['-c', script, process.execPath, FLOTILLA_BIN, dir], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  dog.unref();
  if (dog.stdin instanceof Socket) dog.stdin.unref();
  dog.on('error', () => undefined);
  return dog;
}

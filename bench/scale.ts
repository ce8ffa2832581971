/**
 * Scale benchmark: Flotilla at 5,000 machines and 100,000 units, through the real path. A
 * real etcd, two real scheduler replicas (`node dist/scheduler/main.js`, election TTL 5 s,
 * each serving the API), real flotctl child processes for every command; only the machines
 * are simulated: their records under one lease each (bench/sim-machines.ts) and their agents'
 * state reports (bench/sim-agents.ts). Measured, each against its target:
 *
 * 1. `flotctl scale web@.service=N`: until every instance is placed, and until list-units
 *    shows them all active (states written, then confirmed by a list-units run);
 * 2. list-units of every unit; status of one; list-units --machine; list-machines;
 * 3. both replicas' RSS at full size, and the leader's CPU over 10 s with nothing to do;
 * 4. 50 machines lost (leases revoked): until each of their units runs elsewhere;
 * 5. `flotctl scale web@.service=N/10`: until flotctl returns, and until N/10 are placed;
 * 6. leader SIGKILL: until the successor places a unit started right after the kill.
 *
 * During the scale it also counts machine leases lost, election keys lost and leader changes,
 * and takes each daemon's event-loop delay p99 (bench/scale-load.ts): a big scale must cost
 * no lease and no leader, however slow the host.
 *
 * Flags: USAGE below (`--help`). `--cpu-quota F` runs etcd, each replica and this process
 * with its simulated machines and agents (and so the flotctl runs it starts) at most F of one
 * core each, through testkit/cpu-quota.ts (root and cgroup v1 `cpu` needed); the chaos
 * suite's Overload case runs it with `--scale-only`. Prints a table, then one JSON line. Run with
 * `npm run bench:scale`; try it small first: `-- --machines 200 --count 4000`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LeasePool, openStore, type Store } from '../store/index.js';
import { freePorts, startEtcd, uniquePrefix, type EtcdServer } from '../testkit/index.js';
import { CpuQuota } from '../testkit/cpu-quota.js';
import { LoadWatch } from './scale-load.js';
import { SimAgents } from './sim-agents.js';
import {
  machineLeasePool,
  makeMachines,
  registerMachines,
  startLogsStandIn,
  type LogsStandIn,
  type SimMachine,
} from './sim-machines.js';
import { readLeader } from '../scheduler/leader/leadership.js';
import { DEFAULT_MAX_INSTANCES } from '../scheduler/api/admission.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { logProblems, Processes, startReplica, type Replica } from './scale-procs.js';
import { measures, Report } from './scale-report.js';
import * as steps from './scale-steps.js';

const ELECTION_TTL_S = 5;
const MACHINE_TTL_S = 10;
/** etcd's backend quota: 8 GiB instead of 2, so history at 100,000 units never hits it. */
const ETCD_QUOTA = 8 * 1024 ** 3;

interface ScaleOptions {
  readonly machines: number;
  readonly count: number;
  readonly lose: number;
  readonly stepTimeoutMs: number;
  readonly rescheduleRate: number | undefined;
  readonly keep: boolean;
  /** Seconds to leave the full-size cluster up after scaling, for poking at it by hand. */
  readonly holdS: number;
  /** A share of one core for etcd, each replica and the bench process; undefined: none. */
  readonly cpuQuota: number | undefined;
  /** Stop after the scale up (step 1). */
  readonly scaleOnly: boolean;
}

const USAGE = `usage: npm run bench:scale -- [options]
  --machines N          simulated machines (5000)
  --count N, --units N  instances of web@.service to scale to (100000)
  --lose N              machines lost in step 4 (50)
  --step-timeout S      seconds each step may take (300)
  --reschedule-rate R   the schedulers' --reschedule-rate (their default)
  --cpu-quota F         a slow host: etcd, each replica and the simulator at F of one core
  --scale-only          stop after the scale up (leases, leaders, event-loop delay)
  --keep                keep the work directory with the logs
  --hold S              leave the cluster up S seconds after the scale, to try flotctl by hand
  -h, --help            print this`;

const OPTIONS = {
  machines: { type: 'string' },
  count: { type: 'string' },
  units: { type: 'string' },
  lose: { type: 'string' },
  'step-timeout': { type: 'string' },
  'reschedule-rate': { type: 'string' },
  keep: { type: 'boolean' },
  hold: { type: 'string' },
  'cpu-quota': { type: 'string' },
  'scale-only': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The options; the usage on `--help` (exit 0) or on an option it does not know (exit 2). */
function parseOptions(): ScaleOptions {
  let values;
  try {
    ({ values } = parseArgs({ options: OPTIONS }));
  } catch (err) {
    console.error(`bench:scale: ${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (values.help === true) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (raw: string | undefined, fallback: number, what: string): number => {
    const n = raw === undefined ? fallback : Number(raw);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${what}: expected a whole number`);
    return n;
  };
  if (values.units !== undefined && values.count !== undefined && values.units !== values.count) {
    throw new Error('--units and --count name the same figure: give one');
  }
  const rate = values['reschedule-rate'];
  const quota = values['cpu-quota'];
  const cpuQuota = quota === undefined ? undefined : Number(quota);
  if (cpuQuota !== undefined && !(cpuQuota > 0 && cpuQuota <= 64)) {
    throw new Error('--cpu-quota: expected a share of one core, e.g. 0.5');
  }
  return {
    machines: int(values.machines, 5_000, 'machines'),
    count: int(
      values.units ?? values.count,
      100_000,
      values.units === undefined ? 'count' : 'units',
    ),
    lose: int(values.lose, 50, 'lose'),
    stepTimeoutMs: int(values['step-timeout'], 300, 'step-timeout') * 1000,
    rescheduleRate: rate === undefined ? undefined : int(rate, 0, 'reschedule-rate'),
    keep: values.keep === true,
    holdS: int(values.hold, 0, 'hold'),
    cpuQuota,
    scaleOnly: values['scale-only'] ?? false,
  };
}

/** What the benchmark started, for the teardown (each part absent until it is started). */
interface Started {
  workDir?: string;
  procs?: Processes;
  etcd?: EtcdServer;
  store?: Store;
  pool?: LeasePool;
  logs?: LogsStandIn;
  agents?: SimAgents;
  quota?: CpuQuota | undefined;
  load?: LoadWatch;
  replicas: Replica[];
}

const progress = (text: string): boolean => process.stderr.write(`${text}\n`);

/** Starts etcd, the machines and their agents, two replicas; submits the template. */
async function setUp(opts: ScaleOptions, s: Started, report: Report): Promise<steps.Bench> {
  const workDir = (s.workDir = await mkdtemp(join(tmpdir(), 'flotilla-bench-scale-')));
  const procs = (s.procs = new Processes(workDir));
  const quota = (s.quota =
    opts.cpuQuota === undefined
      ? undefined
      : await CpuQuota.create({ fraction: opts.cpuQuota, label: 'bench-scale' }));
  // FLOTILLA_BENCH_ETCD_ARGS: etcd flags, e.g. --enable-pprof to profile it.
  const etcdArgs = (process.env.FLOTILLA_BENCH_ETCD_ARGS ?? '').split(' ').filter((a) => a !== '');
  const etcd = (s.etcd = await startEtcd({
    extraArgs: [`--quota-backend-bytes=${ETCD_QUOTA}`, ...etcdArgs],
  }));
  if (quota !== undefined) {
    if (etcd.pid === undefined) throw new Error('etcd has no pid to throttle');
    await quota.place(etcd.pid, 'etcd');
    // This process: the simulated machines' leases and agents (and the flotctl runs it starts).
    await quota.place(process.pid, 'bench');
  }
  const store = (s.store = openStore({ endpoints: etcd.endpoint, prefix: uniquePrefix('scale') }));
  const logs = (s.logs = await startLogsStandIn());
  const machines = makeMachines(opts.machines, logs.endpoint);
  const byId = new Map<string, SimMachine>(machines.map((m) => [m.id, m]));
  const byLease = new Map<bigint, SimMachine>();
  const pool = (s.pool = machineLeasePool(store, opts.machines, MACHINE_TTL_S));
  let unplanned = 0;
  report.set('unplannedLeaseLosses', 0);
  pool.on((e) => {
    if (e.type === 'error') return progress(`  keepalive stream: ${e.error.message}`);
    const m = byLease.get(e.lease);
    if (m === undefined || !m.alive) return;
    m.alive = false; // its record and states are gone: the leader will move its units
    s.agents?.machinesGone(new Set([m.id]));
    report.set('unplannedLeaseLosses', ++unplanned);
    if (unplanned <= 10) progress(`  WARNING: machine ${m.id} lost its lease unplanned`);
    if (unplanned === 10) progress('  (further lost machines are counted, not listed)');
  });
  const leaseOf = (id: string): bigint | undefined => {
    const m = byId.get(id);
    return m?.alive === true ? m.lease : undefined;
  };
  s.agents = await SimAgents.start(store, { leaseOf, countedPrefix: 'web@' });
  let t = Date.now();
  await registerMachines(store, pool, machines);
  for (const m of machines) if (m.lease !== undefined) byLease.set(m.lease, m);
  progress(`registered ${opts.machines} machines in ${Date.now() - t} ms`);

  const ports = await freePorts(4);
  const replicaOpts = (name: string, port: number | undefined, metrics: number | undefined) => ({
    etcdEndpoint: etcd.endpoint,
    prefix: store.keys.prefix,
    name,
    port: port ?? 0,
    electionTtlS: ELECTION_TTL_S,
    rescheduleRate: opts.rescheduleRate,
    maxInstances: Math.max(opts.count, DEFAULT_MAX_INSTANCES),
    extraArgs: [`--metrics-listen=127.0.0.1:${metrics ?? 0}`],
  });
  const throttle = async (r: Replica): Promise<Replica> => {
    await quota?.place(r.pid, r.name);
    return r;
  };
  t = Date.now();
  const first = await throttle(
    await startReplica(procs, replicaOpts('sched-a', ports[0], ports[2])),
  );
  s.replicas.push(first);
  // The first replica leads before the second starts, so which one leads is known.
  const deadline = Date.now() + 60_000;
  while ((await readLeader(store))?.name !== 'sched-a') {
    if (Date.now() > deadline) throw new Error(`sched-a was not elected within 60 s`);
    await sleep(100);
  }
  s.replicas.push(
    await throttle(await startReplica(procs, replicaOpts('sched-b', ports[1], ports[3]))),
  );
  s.load = await LoadWatch.start(store, [
    { name: 'sched-a', metrics: `127.0.0.1:${ports[2]}`, prefix: 'flotilla_scheduler_' },
    { name: 'sched-b', metrics: `127.0.0.1:${ports[3]}`, prefix: 'flotilla_scheduler_' },
  ]);
  progress(`replicas up in ${Date.now() - t} ms (sched-a leads; logs in ${workDir})`);
  const bench: steps.Bench = {
    store,
    pool,
    procs,
    agents: s.agents,
    machines,
    replicas: s.replicas,
    report,
    load: s.load,
    workDir,
    stepTimeoutMs: opts.stepTimeoutMs,
    api: first.api,
  };
  await steps.submitTemplate(bench, opts.count);
  return bench;
}

let tearingDown: Promise<void> | undefined;

/** Ends everything that was started, in reverse order; safe to call twice. */
function tearDown(s: Started, keep: boolean): Promise<void> {
  tearingDown ??= (async () => {
    await s.load?.close().catch(() => undefined);
    await s.agents?.close().catch(() => undefined);
    await s.pool?.close().catch(() => undefined);
    s.logs?.close();
    await s.procs?.stopAll();
    s.store?.close();
    await s.etcd?.stop().catch(() => undefined);
    await s.quota?.release().catch(() => undefined);
    if (s.workDir !== undefined && !keep) await rm(s.workDir, { recursive: true, force: true });
    s.procs?.dismissWatchdog(); // everything is gone: it would only remove a dir kept on purpose
  })();
  return tearingDown;
}

/** Runs one step; an error becomes the reason of every figure it had not set yet. */
async function step(
  report: Report,
  label: string,
  keys: readonly string[],
  fn: () => Promise<void>,
): Promise<void> {
  progress(`${new Date().toISOString().slice(11, 19)} ${label}`);
  try {
    await fn();
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    progress(`  failed: ${why}`);
    for (const key of keys) if (report.get(key) === undefined) report.miss(key, why);
  }
}

async function main(): Promise<void> {
  const opts = parseOptions();
  const low = Math.max(1, Math.floor(opts.count / 10));
  const report = new Report(measures(opts.count, low, ELECTION_TTL_S, steps.START_FILES));
  const started: Started = { replicas: [] };
  // The first signal tears down in order (replicas resign, etcd stops, the dir goes); a
  // second one, while that runs, SIGKILLs the children at once and leaves.
  let signals = 0;
  const stop = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      started.procs?.killNow();
      process.exit(130);
    }
    progress(`${signal}: cleaning up`);
    void tearDown(started, opts.keep).finally(() => process.exit(130));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.once('exit', () => started.procs?.killNow());
  let failed = false;
  try {
    let b: steps.Bench | undefined;
    try {
      b = await setUp(opts, started, report);
    } catch (err) {
      failed = true;
      const why = err instanceof Error ? err.message : String(err);
      progress(`set-up failed: ${why}`);
      report.missAll(`set-up failed: ${why.split('\n')[0] ?? ''}`);
    }
    if (b !== undefined) await runSteps(b, opts, report);
    // What went wrong inside the replicas, for whoever reads a miss: counted, not dumped.
    const problems: Record<string, Record<string, number>> = {};
    for (const r of started.replicas) {
      const found = await logProblems(r.logPath);
      problems[r.name] = Object.fromEntries(found.slice(0, 5).map((p) => [p.what, p.count]));
      const total = found.reduce((sum, p) => sum + p.count, 0);
      progress(`${r.name}: ${total} warn/error log lines${total > 0 ? ', most frequent:' : ''}`);
      for (const p of found.slice(0, 5)) progress(`  ${String(p.count).padStart(6)}  ${p.what}`);
    }
    console.log(
      `\n${opts.machines} machines, ${opts.count} units, election TTL ${ELECTION_TTL_S} s, ` +
        `reschedule rate ${opts.rescheduleRate ?? 'auto'}` +
        `${opts.cpuQuota === undefined ? '' : `, CPU quota ${opts.cpuQuota} core each`}\n`,
    );
    console.log(report.table());
    console.log(
      report.json({
        machines: opts.machines,
        count: opts.count,
        lose: opts.lose,
        electionTtlS: ELECTION_TTL_S,
        machineTtlS: MACHINE_TTL_S,
        rescheduleRate: opts.rescheduleRate ?? null,
        cpuQuota: opts.cpuQuota ?? null,
        stepTimeoutS: opts.stepTimeoutMs / 1000,
        stateTxnFailures: b?.agents.failures ?? null,
        schedulerLogProblems: problems,
      }),
    );
  } finally {
    await tearDown(started, opts.keep);
  }
  process.exitCode = failed ? 1 : 0;
}

/** The measured steps, in order; each goes on whatever the previous ones left. */
async function runSteps(b: steps.Bench, opts: ScaleOptions, report: Report): Promise<void> {
  const n = opts.count;
  const low = Math.max(1, Math.floor(n / 10));
  await step(report, `scale to ${n}`, ['scalePlacedMs', 'scaleActiveMs'], () =>
    steps.scaleUp(b, n),
  );
  if (opts.holdS > 0) {
    progress(`holding ${opts.holdS} s: FLOTCTL_ENDPOINT=${b.api} bin/flotctl ...`);
    await sleep(opts.holdS * 1000);
  }
  if (opts.scaleOnly) return;
  const queryKeys = ['listUnitsMs', 'statusMs', 'listUnitsMachineMs', 'listMachinesMs'];
  await step(report, 'queries', queryKeys, () => steps.queries(b, n));
  const footprintKeys = ['leaderRssBytes', 'followerRssBytes', 'leaderIdleCpuPct', 'etcdDbBytes'];
  await step(report, 'footprint', footprintKeys, () => steps.footprint(b));
  await step(report, `start ${steps.START_FILES} files`, ['startPlacedMs', 'startFlotctlMs'], () =>
    steps.startFiles(b),
  );
  await step(report, `lose ${opts.lose} machines`, ['lossRecoveredMs'], () =>
    steps.loseMachines(b, opts.lose),
  );
  await step(report, `scale to ${low}`, ['scaleDownFlotctlMs', 'scaleDownPlacedMs'], () =>
    steps.scaleDown(b, low),
  );
  await step(report, 'leader SIGKILL', ['leaderKillPlacedMs'], () => steps.killLeader(b));
}

main().then(
  () => process.exit(),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

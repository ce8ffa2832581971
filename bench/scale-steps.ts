/**
 * The measured steps of the scale benchmark, in the order it runs them. Each step drives the
 * cluster only through real flotctl runs against a scheduler's API (or, to lose machines, by
 * revoking their leases as a dying agent's lease would vanish), and times the outcome as the
 * simulated agents see it in etcd. A step that cannot finish in time records null with the
 * reason and leaves the cluster as it is, so the next step still runs.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readLeader } from '../scheduler/leader/leadership.js';
import type { LeasePool, Store } from '../store/index.js';
import type { SimAgents } from './sim-agents.js';
import type { SimMachine } from './sim-machines.js';
import {
  cpuSeconds,
  failureOf,
  flotctl,
  hasExited,
  median,
  rssBytes,
  waitUntil,
  type FlotctlRun,
  type Processes,
  type Replica,
  type WaitResult,
} from './scale-procs.js';
import type { Report } from './scale-report.js';
import type { LoadWatch } from './scale-load.js';

/** Everything a step needs. */
export interface Bench {
  readonly store: Store;
  readonly pool: LeasePool;
  readonly procs: Processes;
  readonly agents: SimAgents;
  readonly machines: readonly SimMachine[];
  readonly replicas: readonly Replica[];
  readonly report: Report;
  /** Leader changes, election keys lost and event-loop delays, over the scale. */
  readonly load: LoadWatch;
  readonly workDir: string;
  readonly stepTimeoutMs: number;
  /** The API flotctl talks to: the first leader's, then the survivor's. */
  api: string;
}

/** The template every step scales. */
export const TEMPLATE = 'web@.service';

/**
 * The template's text for `count` instances on `machines` machines: at most 40 a machine, or
 * twice the average when that is more (a million on 10,000 machines: 200), with a CPU share
 * that lets that many fit a simulated machine's 8 cores (10%, or less when 80 would not do).
 */
export function templateText(count: number, machines: number): string {
  const perMachine = Math.max(40, Math.ceil((2 * count) / Math.max(1, machines)));
  const cpuPercent = Math.max(1, Math.min(10, Math.floor(800 / perMachine)));
  return `[Unit]
Description=Scale benchmark web server %i

[Service]
ExecStart=/bin/sleep infinity
CPUQuota=${cpuPercent}%
MemoryMax=64M

[X-Fleet]
SpreadBy=zone
MaxPerMachine=${perMachine}
`;
}

/** The template as the 100,000-on-5,000 run has it (other benchmarks scale it too). */
export const TEMPLATE_TEXT = templateText(100_000, 5_000);
const AFTER_KILL = 'after-kill.service';

/** Runs flotctl against the bench's API within the step timeout (plus room to report). */
function run(b: Bench, args: readonly string[], markPrefix?: string): Promise<FlotctlRun> {
  const opts = { timeoutMs: b.stepTimeoutMs + 30_000 };
  return flotctl(b.procs, b.api, args, markPrefix === undefined ? opts : { ...opts, markPrefix });
}

/** `flotctl scale` with a wait as long as the step's (flotctl's default is 60 s). */
function scaleRun(b: Bench, count: number): Promise<FlotctlRun> {
  const wait = `${Math.ceil(b.stepTimeoutMs / 1000)}s`;
  return run(b, ['scale', '--timeout', wait, `${TEMPLATE}=${count}`], 'Scaled ');
}

/** Records `key` as the time from `t0` to the wait's end, or null with its reason. */
function record(b: Bench, key: string, t0: number, result: WaitResult, detail = ''): void {
  if ('at' in result) b.report.set(key, result.at - t0);
  else b.report.miss(key, detail === '' ? result.reason : `${result.reason}: ${detail}`);
}

/**
 * A give-up rule for waits that run beside a flotctl run: once flotctl has failed and the
 * agents have seen nothing change for 15 s, nothing more is coming.
 */
function stalled(b: Bench, done: () => FlotctlRun | undefined): () => string | undefined {
  let last = b.agents.changes;
  let since = Date.now();
  return () => {
    if (b.agents.changes !== last) {
      last = b.agents.changes;
      since = Date.now();
    }
    const r = done();
    if (r === undefined || r.code === 0 || Date.now() - since < 15_000) return undefined;
    return `${failureOf(r)}; nothing changed for 15 s`;
  };
}

/** Submits the template sized for `count` instances (`flotctl submit FILE`); throws if that fails. */
export async function submitTemplate(b: Bench, count: number): Promise<void> {
  const file = join(b.workDir, TEMPLATE);
  await writeFile(file, templateText(count, b.machines.length));
  const r = await run(b, ['submit', file]);
  if (r.code !== 0) throw new Error(`flotctl submit ${TEMPLATE}: ${failureOf(r)}`);
}

/** `flotctl scale web@.service=N` from 0: placed, states reported, list-units shows them. */
export async function scaleUp(b: Bench, count: number): Promise<void> {
  const mark = await b.load.mark();
  const lostBefore = b.report.get('unplannedLeaseLosses') ?? 0;
  try {
    await scaleUpTimed(b, count);
  } finally {
    const load = await b.load.since(mark);
    b.report.set(
      'scaleMachineLeasesLost',
      (b.report.get('unplannedLeaseLosses') ?? 0) - lostBefore,
    );
    b.report.set('scaleElectionKeysLost', load.electionKeysLost);
    b.report.set('scaleLeaderChanges', load.leaderChanges);
    for (const [name, key] of [
      ['sched-a', 'scaleLoopP99LeaderMs'],
      ['sched-b', 'scaleLoopP99FollowerMs'],
      ['bench', 'scaleLoopP99BenchMs'],
    ] as const) {
      const p99 = load.delayP99Ms.get(name);
      if (p99 === undefined) b.report.miss(key, `${name}'s /metrics did not answer`);
      else b.report.set(key, p99);
    }
    const leader = load.delaySamples.get('sched-a');
    if (leader !== undefined) {
      b.report.set('scaleLoopOverLeader', leader.over100);
      b.report.set('scaleLoopSamplesLeader', leader.total);
    }
  }
}

async function scaleUpTimed(b: Bench, count: number): Promise<void> {
  const t0 = Date.now();
  const deadline = t0 + b.stepTimeoutMs;
  let done: FlotctlRun | undefined;
  const running = scaleRun(b, count).then((r) => (done = r));
  const giveUp = stalled(b, () => done);
  const probing = probeDuring(b, () => b.agents.placed >= count || done !== undefined);
  const placed = await waitUntil(() => b.agents.placed >= count, deadline, { giveUp });
  record(b, 'scalePlacedMs', t0, placed, `${b.agents.placed} of ${count} placed`);
  await probing;
  const reported = await waitUntil(() => b.agents.reported >= count, deadline, { giveUp });
  const r = await running;
  if (r.code === 0) b.report.set('scaleFlotctlMs', r.ms);
  else b.report.miss('scaleFlotctlMs', failureOf(r));
  if (r.markMs !== undefined) b.report.set('scaleRpcMs', r.markMs);
  else b.report.miss('scaleRpcMs', failureOf(r) || 'no "Scaled" line');
  if (!('at' in reported)) {
    record(b, 'scaleActiveMs', t0, reported, `${b.agents.reported} of ${count} reported`);
    return;
  }
  // Every state is in etcd; list-units is the judge of what a user sees. Should it not show
  // them all yet, it is asked again until it does, and that run's end is the figure.
  let check = await run(b, ['list-units']);
  if (check.activeRows >= count) {
    b.report.set('scaleActiveMs', reported.at - t0);
    return;
  }
  while (Date.now() < deadline) {
    check = await run(b, ['list-units']);
    if (check.activeRows >= count) {
      b.report.set('scaleActiveMs', Date.now() - t0);
      return;
    }
  }
  const why = failureOf(check) || `list-units shows ${check.activeRows} of ${count} active`;
  b.report.miss('scaleActiveMs', `states all written, but ${why}`);
}

/**
 * `flotctl status` of an instance and `list-units --machine` one after the other while the
 * scale places (at most 40 of each): what a user waits for from the leader's API meanwhile.
 * Median and longest of the runs that succeeded.
 */
async function probeDuring(b: Bench, over: () => boolean): Promise<void> {
  const runs: Record<'status' | 'machine', number[]> = { status: [], machine: [] };
  const probes = [
    ['status', ['status', 'web@1.service']],
    ['machine', ['list-units', '--machine', b.machines[0]?.id ?? '']],
  ] as const;
  for (let i = 0; i < 40 && !over(); i++) {
    for (const [what, args] of probes) {
      const r = await run(b, args);
      if (r.code === 0) runs[what].push(r.ms);
    }
  }
  for (const [what, key] of [
    ['status', 'scaleStatus'],
    ['machine', 'scaleListMachine'],
  ] as const) {
    const m = median(runs[what]);
    if (m === undefined) continue;
    b.report.set(`${key}Ms`, m);
    b.report.set(`${key}MaxMs`, Math.max(...runs[what]));
  }
}

/**
 * Runs `args` `times` times and records the median wall time under `key` (null when any run
 * fails); returns the last run.
 */
async function timed(
  b: Bench,
  key: string,
  args: readonly string[],
  times: number,
): Promise<FlotctlRun | undefined> {
  const ms: number[] = [];
  let last: FlotctlRun | undefined;
  for (let i = 0; i < times; i++) {
    last = await run(b, args);
    if (last.code !== 0) {
      b.report.miss(key, failureOf(last));
      return last;
    }
    ms.push(last.ms);
  }
  const m = median(ms);
  if (m !== undefined) b.report.set(key, m);
  return last;
}

/** The listings and single-unit reads at full size. */
export async function queries(b: Bench, count: number): Promise<void> {
  const all = await timed(b, 'listUnitsMs', ['list-units'], 3);
  if (all?.code === 0) b.report.set('listUnitsRows', all.lines - 1);
  // Every command below pays for starting node and loading flotctl: this is that floor.
  await timed(b, 'flotctlStartMs', ['--help'], 5);
  const unit = `web@${Math.min(77, count)}.service`;
  await timed(b, 'statusMs', ['status', unit], 5);
  const machine = b.agents.machineOf(unit) ?? b.machines[0]?.id ?? '';
  await timed(b, 'listUnitsMachineMs', ['list-units', '--machine', machine], 5);
  const machines = await timed(b, 'listMachinesMs', ['list-machines'], 5);
  if (machines?.code === 0) b.report.set('listMachinesRows', machines.lines - 1);
}

/** The leader and the follower, by the election key's name. */
async function roles(b: Bench): Promise<{ leader: Replica; follower: Replica | undefined }> {
  const info = await readLeader(b.store);
  const leader = b.replicas.find((r) => r.name === info?.name && !hasExited(r.child));
  if (leader === undefined) throw new Error(`the leader (${info?.name ?? 'none'}) is not ours`);
  const follower = b.replicas.find((r) => r !== leader && !hasExited(r.child));
  return { leader, follower };
}

/** RSS of both replicas, then their CPU over 10 s with nothing to do. */
export async function footprint(b: Bench): Promise<void> {
  const { leader, follower } = await roles(b);
  const put = (key: string, value: number | undefined, what: string): void =>
    value === undefined ? b.report.miss(key, `${what} not running`) : b.report.set(key, value);
  put('leaderRssBytes', rssBytes(leader.pid), 'leader');
  put('followerRssBytes', follower && rssBytes(follower.pid), 'follower');
  // What the units' records cost etcd (instance records, or one count record since issue
  // "Instances from counts"), with placements and states: the answering member's file size.
  put('etcdDbBytes', await b.store.dbSize().catch(() => undefined), 'etcd');
  await sleep(3_000); // let the last listing's work drain before "idle" starts
  const t0 = Date.now();
  const before = [cpuSeconds(leader.pid), follower && cpuSeconds(follower.pid)];
  await sleep(10_000);
  const after = [cpuSeconds(leader.pid), follower && cpuSeconds(follower.pid)];
  const seconds = (Date.now() - t0) / 1000;
  const pct = (i: number): number | undefined => {
    const [a, z] = [before[i], after[i]];
    return a === undefined || z === undefined ? undefined : ((z - a) / seconds) * 100;
  };
  put('leaderIdleCpuPct', pct(0), 'leader');
  put('followerIdleCpuPct', pct(1), 'follower');
}

/** How many unit files {@link startFiles} gives one `flotctl start`. */
export const START_FILES = 1_000;

/**
 * `flotctl start` of {@link START_FILES} plain unit files named on its command line, into the
 * full cluster: timed until the agents see every one of them placed, and until flotctl
 * (which waits for each to run) returns.
 */
export async function startFiles(b: Bench): Promise<void> {
  const dir = join(b.workDir, 'start');
  await mkdir(dir, { recursive: true });
  const names = Array.from({ length: START_FILES }, (_, i) => `batch-${i + 1}.service`);
  const files = names.map((name) => join(dir, name));
  await Promise.all(
    names.map((name, i) =>
      writeFile(
        files[i] ?? '',
        `[Unit]\nDescription=${name}, one of ${START_FILES} started at once\n\n` +
          '[Service]\nExecStart=/bin/sleep infinity\nCPUQuota=5%\nMemoryMax=32M\n',
      ),
    ),
  );
  const t0 = Date.now();
  let done: FlotctlRun | undefined;
  const wait = `${Math.ceil(b.stepTimeoutMs / 1000)}s`;
  const running = run(b, ['start', '--timeout', wait, ...files]).then((r) => (done = r));
  const placed = await waitUntil(
    () => names.every((n) => b.agents.placedAt(n) !== undefined),
    t0 + b.stepTimeoutMs,
    { giveUp: stalled(b, () => done) },
  );
  const last = Math.max(...names.map((n) => b.agents.placedAt(n) ?? 0));
  const left = names.filter((n) => b.agents.placedAt(n) === undefined).length;
  record(b, 'startPlacedMs', t0, 'at' in placed ? { at: last } : placed, `${left} not placed`);
  const r = await running;
  if (r.code === 0) b.report.set('startFlotctlMs', r.ms);
  else b.report.miss('startFlotctlMs', failureOf(r));
}

/**
 * Revokes the leases of `lose` live machines (the first by index, so every zone loses some):
 * their records and states vanish at once, as at the expiry of a dead agent's lease. Timed
 * from the revocation until every unit they held is placed on a live machine and reported
 * active from there.
 */
export async function loseMachines(b: Bench, lose: number): Promise<void> {
  const lost = b.machines.filter((m) => m.alive && m.lease !== undefined).slice(0, lose);
  const ids = new Set(lost.map((m) => m.id));
  const affected = b.agents.unitsOn(ids);
  b.report.set('lossUnits', affected.length);
  for (const m of lost) m.alive = false;
  b.agents.machinesGone(ids);
  const t0 = Date.now();
  await Promise.all(lost.map((m) => (m.lease === undefined ? undefined : b.pool.revoke(m.lease))));
  const pending = new Set(affected);
  const moved = await waitUntil(
    () => {
      for (const u of pending) {
        const at = b.agents.machineOf(u);
        if (at !== undefined && !ids.has(at) && b.agents.isReported(u)) pending.delete(u);
      }
      return pending.size === 0;
    },
    t0 + b.stepTimeoutMs,
    { pollMs: 50 },
  );
  record(b, 'lossRecoveredMs', t0, moved, `${pending.size} of ${affected.length} not yet moved`);
}

/** `flotctl scale web@.service=LOW` from the full count: flotctl's return, placements gone. */
export async function scaleDown(b: Bench, low: number): Promise<void> {
  const t0 = Date.now();
  let done: FlotctlRun | undefined;
  const running = scaleRun(b, low).then((r) => (done = r));
  const placed = await waitUntil(() => b.agents.placed <= low, t0 + b.stepTimeoutMs, {
    giveUp: stalled(b, () => done),
  });
  record(b, 'scaleDownPlacedMs', t0, placed, `${b.agents.placed} placements left`);
  const r = await running;
  if (r.code === 0) b.report.set('scaleDownFlotctlMs', r.ms);
  else {
    b.report.miss('scaleDownFlotctlMs', failureOf(r));
    await explain(b, r);
  }
}

/**
 * When flotctl gave up on a unit, prints to stderr what etcd holds for it now (its record,
 * placements, state), so a report can say whether the cluster or flotctl's view was behind.
 */
async function explain(b: Bench, r: FlotctlRun): Promise<void> {
  const name = /waiting for (\S+) to be/.exec(r.stderr)?.[1];
  if (name === undefined) return;
  const k = b.store.keys;
  const [unit, placements] = await Promise.all([
    b.store.get(k.unit(name)),
    b.store.list(k.dir('placement')),
  ]);
  const placed = placements.items.filter((kv) => k.parse(kv.key)?.name === name);
  // A state is keyed by the machine that reports it: look where the unit is placed.
  const machines = placed.map((kv) => k.parse(kv.key)?.machine).filter((m) => m !== undefined);
  const reports = await Promise.all(machines.map((m) => b.store.get(k.state(m, name))));
  const state = reports.find((kv) => kv !== undefined);
  process.stderr.write(
    `  etcd now, for ${name}: unit ${unit === undefined ? 'absent' : 'present'}, ` +
      `placements [${placed.map((kv) => k.parse(kv.key)?.machine ?? '?').join(', ')}], ` +
      `state ${state === undefined ? 'absent' : state.value.toString('utf8')}\n`,
  );
}

/**
 * SIGKILLs the leader, then at once submits and starts a plain unit through the follower's
 * API (`flotctl start --no-block FILE`); timed until the successor's placement of it is seen.
 */
export async function killLeader(b: Bench): Promise<void> {
  const { leader, follower } = await roles(b);
  if (follower === undefined) throw new Error('no follower to take over');
  const file = join(b.workDir, AFTER_KILL);
  await writeFile(
    file,
    '[Unit]\nDescription=placed by the successor\n\n[Service]\nExecStart=/bin/sleep infinity\n',
  );
  const t0 = Date.now();
  leader.child.kill('SIGKILL');
  b.api = follower.api;
  let done: FlotctlRun | undefined;
  const running = run(b, ['start', '--no-block', file]).then((r) => (done = r));
  const placed = await waitUntil(
    () => b.agents.placedAt(AFTER_KILL) !== undefined,
    t0 + b.stepTimeoutMs,
    {
      giveUp: () => (done !== undefined && done.code !== 0 ? failureOf(done) : undefined),
    },
  );
  const at = b.agents.placedAt(AFTER_KILL);
  record(b, 'leaderKillPlacedMs', t0, 'at' in placed && at !== undefined ? { at } : placed);
  await running;
}

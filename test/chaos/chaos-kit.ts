/**
 * The chaos kit: the e2e kit's real cluster grown to a 3-member etcd, three schedulers and
 * five agents in network namespaces running runc, plus the invariants the chaos suite checks
 * from outside the daemons:
 * - what runs: runc's containers on this host, per unit and machine ({@link hostCopies});
 * - what users see: `flotctl -o json list-units`, each call timed ({@link FlotctlProbe});
 * - who is alive: every recorded scheduler and agent process ({@link deadDaemons}).
 * Faults are in faults.ts. Run with `npm run test:chaos`; `FLOTILLA_CHAOS=ci` runs the short
 * set ({@link full} marks the rest).
 */
import anyTest, { type TestFn } from 'ava';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MachineLayout } from '../../agent/runtime/layout.js';
import { isRunning } from '../../deploy/cluster/proc.js';
import { assertEventually, sleep } from '../../testkit/index.js';
import { clusterForFile, type E2ECluster, type Run, type UnitView } from '../e2e/e2e-kit.js';
import { Faults } from './faults.js';

/** The agents' lease TTL in the chaos clusters (the e2e kit's). */
export { LEASE_TTL_SECONDS } from '../e2e/e2e-kit.js';

/** True when only the short CI set runs (`FLOTILLA_CHAOS=ci`). */
export const CI_SET = process.env.FLOTILLA_CHAOS === 'ci';

/**
 * Bound on convergence after a fault heals, asserted by every test: each wanted unit runs
 * exactly once, and its state names that machine and says active. Generous on purpose (the
 * machine is shared by several test runs); the figures measured are logged.
 */
export const HEAL_BOUND_MS = 60_000;

/** Longest a flotctl call may take during any fault (flotctl's own deadline is 10 s). */
export const FLOTCTL_BOUND_MS = 30_000;

/** A unit that does nothing, for as long as it is let, on the host's busybox. */
export const IDLE_UNIT = `[Unit]
Description=Idles for the chaos suite (at least once)

[Service]
ExecStart=/bin/busybox sh -c 'while true; do /bin/busybox sleep 1; done'
`;

/** The same, at most once: stopped 1 s after its agent's last renewed lease. */
export const ONCE_UNIT = `[Unit]
Description=Idles for the chaos suite (at most once)

[Service]
ExecStart=/bin/busybox sh -c 'while true; do /bin/busybox sleep 1; done'

[X-Fleet]
StopOnDisconnect=1s
`;

/** Samplers and probes still running: a failed test leaves them to the file's after hook. */
const background = new Set<{ stop(): Promise<unknown> }>();

/** Options of {@link chaosForFile}. */
export interface ChaosOptions {
  /** Cluster name, prefixed `ch`; unique per file. */
  readonly name: string;
  /** Network number, 220-229; unique per file. */
  readonly net: number;
  readonly agents?: number;
  readonly etcdFlags?: readonly string[];
}

/** One chaos cluster per test file, its faults healed and the cluster stopped after it. */
export function chaosForFile(test: TestFn, opts: ChaosOptions) {
  if (!opts.name.startsWith('ch') || opts.net < 220 || opts.net > 229) {
    throw new Error('chaos clusters are named ch... on networks 220-229');
  }
  let faults: Faults | undefined;
  let failed = false;
  test.afterEach.always((t) => {
    if (!t.passed) failed = true;
  });
  test.after.always(async (t) => {
    await Promise.all([...background].map((b) => b.stop()));
    await faults?.healAll();
    // The cluster's directory goes with it: a failed file keeps the daemons' logs to read
    // (every file does with FLOTILLA_CHAOS_KEEP_LOGS=1).
    const dir = kit.clusterOrUndefined()?.dir;
    if ((failed || process.env.FLOTILLA_CHAOS_KEEP_LOGS === '1') && dir !== undefined) {
      const kept = await mkdtemp(join(tmpdir(), `flotilla-chaos-logs-${opts.name}-`));
      await cp(join(dir, 'logs'), kept, { recursive: true }).catch(() => undefined);
      t.log(`the daemons' logs are kept in ${kept}`);
    }
  });
  const kit = clusterForFile(test, {
    name: opts.name,
    net: opts.net,
    agents: opts.agents ?? 5,
    etcdMembers: 3,
    schedulers: 3,
    ...(opts.etcdFlags !== undefined && { etcdFlags: opts.etcdFlags }),
  });
  return {
    ...kit,
    faults(): Faults {
      faults ??= new Faults(kit.cluster());
      return faults;
    },
  };
}

/** `serial` unless only the CI set runs, then skipped: the tests CI leaves to `test:chaos`. */
export function full(
  serial: TestFn['serial'] | TestFn['serial']['skip'],
): TestFn['serial']['skip'] {
  return CI_SET || !('skip' in serial) ? (anyTest as TestFn).serial.skip : serial;
}

/** Runs `flotctl ... submit` then `start` for every unit, and waits until each runs once. */
export async function startUnits(
  c: E2ECluster,
  files: Readonly<Record<string, string>>,
  units: readonly string[],
): Promise<void> {
  await settle(c, files, units, 'the units start');
}

/**
 * The state a case starts from, made and checked by the case itself rather than inherited
 * from the one before (which may have failed half way): `files` submitted and every unit of
 * `units` started (both no-ops for what is there already), then each running exactly once.
 * Throws naming each unit that did not settle with its state and reason as flotctl shows
 * them. Resolves with the seconds it took.
 */
export async function settle(
  c: E2ECluster,
  files: Readonly<Record<string, string>>,
  units: readonly string[],
  what = 'settled before',
): Promise<number> {
  const started = Date.now();
  const paths = await Promise.all(Object.entries(files).map(([n, t]) => c.unitFile(n, t)));
  await c.ok(['submit', ...paths]);
  await c.ok(['start', '--no-block', ...units]);
  await waitExactlyOnce(c, units, what);
  return (Date.now() - started) / 1000;
}

/** Running runc containers on this host, per unit: the machines running a copy. */
export async function hostCopies(
  c: E2ECluster,
  units: readonly string[],
): Promise<Map<string, string[]>> {
  const running = await runningContainers();
  const out = new Map<string, string[]>();
  for (const unit of units) {
    const machines = c.record.agents
      .filter((a) => running.has(new MachineLayout(a.stateDir, a.machineId).containerId(unit)))
      .map((a) => a.machineId);
    out.set(unit, machines);
  }
  return out;
}

async function runningContainers(): Promise<Set<string>> {
  // runc 1.1's list fails as a whole when a container goes away while it lists: try again.
  for (let i = 0; i < 20; i++) {
    const out = await new Promise<string | undefined>((resolve) =>
      execFile('runc', ['list', '--format', 'json'], { timeout: 30_000 }, (err, stdout) =>
        resolve(err === null ? stdout : undefined),
      ),
    );
    if (out !== undefined) {
      const list = JSON.parse(out.trim() === '' ? 'null' : out) as
        { id: string; status: string }[] | null;
      return new Set((list ?? []).filter((ct) => ct.status === 'running').map((ct) => ct.id));
    }
    await sleep(100);
  }
  throw new Error('runc list kept failing');
}

/**
 * What breaks "every wanted unit runs exactly once, and its reported state names the machine
 * it runs on and says active"; [] when nothing does.
 */
export async function exactlyOnceViolations(
  c: E2ECluster,
  units: readonly string[],
): Promise<string[]> {
  const copies = await hostCopies(c, units);
  const views = await c.units();
  const out: string[] = [];
  for (const unit of units) {
    const on = copies.get(unit) ?? [];
    const view: UnitView | undefined = views.get(unit);
    if (on.length !== 1) {
      // Why, as a user would see it: where it is placed, its state, why it is not scheduled.
      const seen =
        view === undefined
          ? 'not listed'
          : `listed ${view.current || '-'} on ${view.machine || '-'} ` +
            `${view.active || '-'}/${view.sub || '-'}${view.unscheduled ? `: ${view.unscheduled}` : ''}`;
      out.push(`${unit} runs ${on.length} times (${on.join(', ')}; ${seen.slice(0, 300)})`);
    } else if (view === undefined || view.machine !== on[0]) {
      out.push(`${unit} runs on ${on[0]}, placed on ${view?.machine}`);
    } else if (view.active !== 'active' || view.sub !== 'running') {
      out.push(`${unit} runs on ${on[0]} but reports ${view.active || '-'}/${view.sub || '-'}`);
    }
  }
  return out;
}

/** Waits until {@link exactlyOnceViolations} is empty; resolves with the seconds it took. */
export async function waitExactlyOnce(
  c: E2ECluster,
  units: readonly string[],
  what: string,
  timeoutMs = HEAL_BOUND_MS,
): Promise<number> {
  const started = Date.now();
  let last: string[] = [];
  try {
    await assertEventually(
      async () => {
        last = await exactlyOnceViolations(c, units);
        return last.length === 0;
      },
      { timeoutMs, intervalMs: 500, message: what },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}: still ${last.join('; ')}`);
  }
  return (Date.now() - started) / 1000;
}

/** The scheduler and agent processes of the cluster that are not running (bar `except`). */
export async function deadDaemons(c: E2ECluster, except: readonly string[] = []) {
  await c.refresh();
  const dead: string[] = [];
  for (const p of c.record.processes) {
    if (p.role === 'etcd' || except.includes(p.name)) continue;
    if (!(await isRunning(p))) dead.push(p.name);
  }
  return dead;
}

/** What {@link CopySampler} saw while a fault lasted. */
export interface CopyStats {
  /** Most copies of each unit running at one sample. */
  readonly maxCopies: Map<string, number>;
  /** Longest stretch (ms) each unit ran more than once, from the first to the last sample. */
  readonly doubleMs: Map<string, number>;
  /** Units whose machine changed at some sample (moved). */
  readonly moved: Set<string>;
  readonly samples: number;
}

/** Samples {@link hostCopies} every `intervalMs` until stopped. */
export class CopySampler {
  private readonly maxCopies = new Map<string, number>();
  private readonly doubleSince = new Map<string, number>();
  private readonly doubleMs = new Map<string, number>();
  private readonly moved = new Set<string>();
  private readonly first = new Map<string, string>();
  private samples = 0;
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly c: E2ECluster,
    private readonly units: readonly string[],
    intervalMs = 250,
  ) {
    this.loop = this.run(intervalMs);
    background.add(this);
  }

  private async run(intervalMs: number): Promise<void> {
    while (!this.stopped) {
      const copies = await hostCopies(this.c, this.units).catch(() => undefined);
      const now = Date.now();
      for (const [unit, on] of copies ?? []) {
        this.maxCopies.set(unit, Math.max(this.maxCopies.get(unit) ?? 0, on.length));
        const since = this.doubleSince.get(unit);
        if (on.length > 1 && since === undefined) this.doubleSince.set(unit, now);
        if (since !== undefined) {
          const ms = now - since;
          this.doubleMs.set(unit, Math.max(this.doubleMs.get(unit) ?? 0, ms));
          if (on.length <= 1) this.doubleSince.delete(unit);
        }
        const at = on.join(',');
        if (on.length === 1) {
          const was = this.first.get(unit);
          if (was === undefined) this.first.set(unit, at);
          else if (was !== at) this.moved.add(unit);
        }
      }
      if (copies !== undefined) this.samples += 1;
      await sleep(intervalMs);
    }
  }

  async stop(): Promise<CopyStats> {
    this.stopped = true;
    background.delete(this);
    await this.loop;
    return {
      maxCopies: this.maxCopies,
      doubleMs: this.doubleMs,
      moved: this.moved,
      samples: this.samples,
    };
  }
}

/** One flotctl call the probe made. */
export interface ProbeCall {
  readonly args: readonly string[];
  readonly ms: number;
  readonly run: Run;
}

/**
 * Calls flotctl over and over (list-units, list-machines, status) while a fault lasts, each
 * against the API replica `endpoint()` names at the time, and keeps every call.
 */
export class FlotctlProbe {
  readonly calls: ProbeCall[] = [];
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly c: E2ECluster,
    status: string,
  ) {
    const verbs = [['list-units'], ['list-machines'], ['status', status]];
    this.loop = (async () => {
      for (let i = 0; !this.stopped; i++) {
        const args = verbs[i % verbs.length] ?? [];
        const t0 = Date.now();
        const run = await this.c.flotctl(args);
        this.calls.push({ args, ms: Date.now() - t0, run });
        await sleep(500);
      }
    })();
    background.add(this);
  }

  /**
   * Stops probing; resolves with the calls that hung past {@link FLOTCTL_BOUND_MS} or failed
   * without a clear one-line error (a stack trace, nothing, or megabytes).
   */
  async stop(): Promise<{ calls: number; slowestMs: number; bad: string[] }> {
    this.stopped = true;
    background.delete(this);
    await this.loop;
    const bad: string[] = [];
    for (const call of this.calls) {
      const what = `flotctl ${call.args.join(' ')}`;
      const err = call.run.stderr.trim();
      if (call.ms > FLOTCTL_BOUND_MS) bad.push(`${what} took ${call.ms} ms`);
      if (call.run.code !== 0 && (err === '' || /\n\s+at /.test(err) || err.length > 4096)) {
        bad.push(`${what} exited ${call.run.code} without a clear error: ${err.slice(0, 300)}`);
      }
    }
    const slowestMs = Math.max(0, ...this.calls.map((c) => c.ms));
    return { calls: this.calls.length, slowestMs, bad };
  }
}

/** How the agents' leases fared across a fault, from their logs (agent/sync/registration.ts). */
export interface RenewalReport {
  /** Longest an agent's lease went unconfirmed (ms, from a renewal to the next one sent). */
  readonly longestGapMs: number;
  /** Per agent that failed to renew at some point: its first renewal after `sinceMs`, ms after it. */
  readonly firstAfter: Map<string, number>;
  /** Agents whose lease etcd expired (they re-registered: their units may have moved). */
  readonly lost: string[];
}

/** The most of each agent's log read: the end, where a fault's lines are. */
const LOG_TAIL_BYTES = 4 << 20;

/**
 * Reads every agent's log from `sinceMs` (Unix ms) on: the renewals that came after failed
 * attempts ('lease renewed again', with how long the lease went unconfirmed) and the leases
 * found lost.
 */
export async function renewalReport(c: E2ECluster, sinceMs: number): Promise<RenewalReport> {
  let longestGapMs = 0;
  const firstAfter = new Map<string, number>();
  const lost: string[] = [];
  for (const proc of c.record.processes.filter((p) => p.role === 'agent')) {
    const text = await readTail(proc.logPath, LOG_TAIL_BYTES);
    for (const line of text.split('\n')) {
      if (!line.includes('lease renewed again') && !line.includes('lease lost')) continue;
      let entry: { time?: number; msg?: string; sinceLastMs?: number };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        continue; // a line cut by the tail
      }
      if ((entry.time ?? 0) < sinceMs) continue;
      if (entry.msg === 'lease renewed again') {
        longestGapMs = Math.max(longestGapMs, entry.sinceLastMs ?? 0);
        if (!firstAfter.has(proc.name)) firstAfter.set(proc.name, (entry.time ?? 0) - sinceMs);
      } else if (entry.msg?.startsWith('lease lost') === true && !lost.includes(proc.name)) {
        lost.push(proc.name);
      }
    }
  }
  return { longestGapMs, firstAfter, lost };
}

/**
 * {@link RenewalReport} in one line, for t.log; `returned` names the moment the report was
 * read from (etcd's return), whose first renewals it then lists.
 */
export function describeRenewals(r: RenewalReport, returned?: string): string {
  const first = [...r.firstAfter].map(([a, ms]) => `${a} ${(ms / 1000).toFixed(1)} s`);
  return (
    `leases: longest unconfirmed ${(r.longestGapMs / 1000).toFixed(1)} s; ` +
    (returned === undefined
      ? ''
      : `first renewal after ${returned}: ${first.join(', ') || 'none had failed'}; `) +
    `lost: ${r.lost.join(', ') || 'none'}`
  );
}

/**
 * The raft leader elections any etcd member logged since `sinceMs` (Unix ms), each once
 * (members log the same election, by leader and term), oldest first. A cluster coming back
 * can elect more than once: a member that stayed up alone campaigned on, at ever higher
 * terms, and unseats the first leader the returning members elect. etcd extends every lease
 * when a leader takes office, so the last election is when etcd was back for the agents.
 */
export async function etcdElectionsSince(c: E2ECluster, sinceMs: number): Promise<number[]> {
  const elections = new Map<string, number>();
  for (const proc of c.record.processes.filter((p) => p.role === 'etcd')) {
    const text = await readTail(proc.logPath, LOG_TAIL_BYTES);
    for (const line of text.split('\n')) {
      const which = /elected leader (\w+) at term (\d+)/.exec(line);
      if (which === null) continue;
      const ts = Date.parse(/"ts":"([^"]+)"/.exec(line)?.[1] ?? '');
      const key = `${which[1]}@${which[2]}`;
      const seen = elections.get(key);
      if (ts >= sinceMs && (seen === undefined || ts < seen)) elections.set(key, ts);
    }
  }
  return [...elections.values()].sort((a, b) => a - b);
}

/** {@link etcdElectionsSince} in words, each election in seconds after `sinceMs`. */
export function describeElections(elections: readonly number[], sinceMs: number): string {
  const at = elections.map((ts) => `${((ts - sinceMs) / 1000).toFixed(1)} s`);
  if (at.length <= 1) return `etcd elected a leader ${at[0] ?? '(none logged)'} after the restart`;
  return `etcd elected a leader ${at.length} times after the restart (${at.join(', ')}); the last held`;
}

async function readTail(path: string, bytes: number): Promise<string> {
  const handle = await open(path, 'r').catch(() => undefined);
  if (handle === undefined) return '';
  try {
    const { size } = await handle.stat();
    const start = Math.max(0, size - bytes);
    const buf = Buffer.alloc(size - start);
    await handle.read(buf, 0, buf.length, start);
    return buf.toString('utf8');
  } finally {
    await handle.close();
  }
}

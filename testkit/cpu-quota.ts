/**
 * A slower host on demand: processes (and their children) under a cgroup v1 `cpu` controller
 * quota, each in a cgroup of its own, so every daemon runs at most at `fraction` of one core.
 * The chaos suite and the benchmarks use it to check what a host about twice as slow at
 * process creation and syscalls does to their bounds (issue 28: `node -e 0` 114 ms there).
 *
 * The period is short (20 ms by default) so throttling is smooth: a process at 0.5 runs 10 ms
 * of every 20 ms rather than stalling for long stretches. Groups are named by the caller's
 * label plus the owner's pid and random hex, so two runs at once never share one;
 * {@link CpuQuota.release} moves anything still inside back to the root cgroup and removes
 * every group, and {@link sweepStaleQuotas} (run by every create) removes what a run that
 * died left behind.
 *
 * @example
 *   const quota = await CpuQuota.create({ fraction: 0.5, label: 'bench' });
 *   try {
 *     const child = spawn(...quota.prefix('etcd'), 'etcd', ...args);   // in from exec on
 *     await quota.place(otherPid, 'scheduler-1');                        // or moved later
 *   } finally {
 *     await quota.release();
 *   }
 */
import { randomBytes } from 'node:crypto';
import { access, mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** The cgroup v1 `cpu` hierarchy (a hybrid host mounts it here, often joined with cpuacct). */
export const CPU_CGROUP_ROOT = '/sys/fs/cgroup/cpu';
/** The variable that puts a test cluster's daemons under a quota: a fraction of one core. */
export const CPU_QUOTA_ENV = 'FLOTILLA_CPU_QUOTA';
/** Every group this harness makes starts with this, and nothing else's does. */
const GROUP_PREFIX = 'flotquota-';
/** The kernel's smallest CFS quota (1 ms) and largest period (1 s), in microseconds. */
const MIN_QUOTA_US = 1_000;
const MAX_PERIOD_US = 1_000_000;

/** Stable codes of {@link CpuQuotaError}. */
export type CpuQuotaErrorCode = 'bad-fraction' | 'not-root' | 'no-cpu-controller' | 'cgroup';

/** Why a quota cannot be set up; the message says what to do instead. */
export class CpuQuotaError extends Error {
  constructor(
    readonly code: CpuQuotaErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CpuQuotaError';
  }
}

/** Options of {@link CpuQuota.create}. */
export interface CpuQuotaOptions {
  /** The share of one core each placed process (with its children) may use, e.g. 0.5. */
  readonly fraction: number;
  /** CFS period in ms; the quota is `fraction` of it. Default 20 (smooth throttling). */
  readonly periodMs?: number;
  /** Names the parent group (`flotquota-<label>-<pid>-<hex>`): letters, digits, `_`, `-`. */
  readonly label: string;
}

/** Throttling the kernel counted for one group (`cpu.stat`). */
export interface ThrottleStats {
  /** Periods in which the group had runnable work. */
  readonly periods: number;
  /** Periods in which it used up its quota and was held back. */
  readonly throttled: number;
  /** Total time held back, ms. */
  readonly throttledMs: number;
}

/**
 * The fraction `FLOTILLA_CPU_QUOTA` asks for; undefined when it is unset or empty. Throws
 * `bad-fraction` for anything else than a number in (0, 64].
 */
export function cpuQuotaFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env[CPU_QUOTA_ENV]?.trim();
  if (raw === undefined || raw === '') return undefined;
  return checkFraction(Number(raw), `${CPU_QUOTA_ENV}=${raw.slice(0, 40)}`);
}

function checkFraction(fraction: number, what: string): number {
  if (!Number.isFinite(fraction) || fraction <= 0 || fraction > 64) {
    throw new CpuQuotaError(
      'bad-fraction',
      `${what}: give the share of one core each daemon may use, a number above 0 and at most 64 (e.g. 0.5)`,
    );
  }
  return fraction;
}

/** Throws unless this process can make cgroups under the v1 `cpu` controller. */
export async function checkCpuQuotaSupport(): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new CpuQuotaError(
      'not-root',
      'a CPU quota needs root (cgroups); run as root or unset it',
    );
  }
  try {
    await access(join(CPU_CGROUP_ROOT, 'cpu.cfs_quota_us'));
  } catch {
    throw new CpuQuotaError(
      'no-cpu-controller',
      `no cgroup v1 cpu controller at ${CPU_CGROUP_ROOT} (cpu.cfs_quota_us): a CPU quota needs a ` +
        'hybrid or v1 cgroup host; unset the quota on a cgroup v2-only host',
    );
  }
}

/** One run's parent group and the per-process groups inside it. */
export class CpuQuota {
  private readonly children = new Set<string>();
  private released = false;

  private constructor(
    /** Absolute path of the parent group. */
    readonly path: string,
    readonly fraction: number,
    readonly periodUs: number,
  ) {}

  /** Makes the parent group; nothing is throttled until a process is placed or prefixed. */
  static async create(opts: CpuQuotaOptions): Promise<CpuQuota> {
    const fraction = checkFraction(opts.fraction, `CPU quota ${opts.fraction}`);
    const periodUs = Math.round((opts.periodMs ?? 20) * 1000);
    if (!(periodUs >= MIN_QUOTA_US && periodUs <= MAX_PERIOD_US)) {
      throw new CpuQuotaError('bad-fraction', 'the CPU quota period must be 1-1000 ms');
    }
    if (Math.round(fraction * periodUs) < MIN_QUOTA_US) {
      throw new CpuQuotaError(
        'bad-fraction',
        `CPU quota ${fraction} of a ${periodUs / 1000} ms period is under the kernel's 1 ms minimum: raise the fraction or the period`,
      );
    }
    if (!/^[A-Za-z0-9_-]{1,40}$/.test(opts.label)) {
      throw new CpuQuotaError(
        'cgroup',
        `CPU quota label "${opts.label.slice(0, 60)}": use 1-40 letters, digits, _ or -`,
      );
    }
    await checkCpuQuotaSupport();
    // What runs killed before their teardown left (empty, owner gone); best effort.
    await sweepStaleQuotas().catch(() => undefined);
    const name = `${GROUP_PREFIX}${opts.label}-${process.pid}-${randomBytes(4).toString('hex')}`;
    const path = join(CPU_CGROUP_ROOT, name);
    await mkdir(path);
    return new CpuQuota(path, fraction, periodUs);
  }

  /** A group made earlier (its path recorded), e.g. by the `flotilla cluster up` that started it. */
  static attach(path: string, fraction: number, periodUs: number): CpuQuota {
    if (!path.startsWith(`${CPU_CGROUP_ROOT}/${GROUP_PREFIX}`)) {
      throw new CpuQuotaError('cgroup', `${path.slice(0, 200)} is not a CPU quota group`);
    }
    return new CpuQuota(path, fraction, periodUs);
  }

  /** The quota per period, microseconds. */
  get quotaUs(): number {
    return Math.round(this.fraction * this.periodUs);
  }

  /** Makes (or reuses) the group `name` with the quota; resolves with its cgroup.procs path. */
  async group(name: string): Promise<string> {
    if (this.released) throw new CpuQuotaError('cgroup', 'this CPU quota was released');
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name) || name.startsWith('.')) {
      throw new CpuQuotaError(
        'cgroup',
        `CPU quota group "${name.slice(0, 80)}": use letters, digits, _, . or -`,
      );
    }
    const dir = join(this.path, name);
    await mkdir(dir, { recursive: true });
    // The period first: the kernel checks the quota against the period in place.
    await writeFile(join(dir, 'cpu.cfs_period_us'), String(this.periodUs));
    await writeFile(join(dir, 'cpu.cfs_quota_us'), String(this.quotaUs));
    this.children.add(name);
    return join(dir, 'cgroup.procs');
  }

  /** Moves `pid` (every thread; children it forks later follow) into the group `name`. */
  async place(pid: number, name: string): Promise<void> {
    const procs = await this.group(name);
    try {
      await writeFile(procs, String(pid));
    } catch (err) {
      throw new CpuQuotaError(
        'cgroup',
        `cannot move pid ${pid} into ${procs}: ${(err as Error).message}`,
      );
    }
  }

  /**
   * A command prefix that joins the group `name` (made first with {@link group}) and then
   * execs the rest in place, so the process is throttled from its first instruction and its
   * pid is the one spawned: `spawn(prefix[0], [...prefix.slice(1), program, ...args])`.
   */
  static prefixFor(procsFile: string): string[] {
    return ['/bin/sh', '-c', 'echo $$ > "$0" && exec "$@"', procsFile];
  }

  /** {@link group} then {@link prefixFor}. */
  async prefix(name: string): Promise<string[]> {
    return CpuQuota.prefixFor(await this.group(name));
  }

  /** What the kernel counted for group `name` (zeros when it is gone). */
  async stats(name: string): Promise<ThrottleStats> {
    const text = await readFile(join(this.path, name, 'cpu.stat'), 'utf8').catch(() => '');
    const field = (k: string) => Number(new RegExp(`^${k} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    return {
      periods: field('nr_periods'),
      throttled: field('nr_throttled'),
      throttledMs: field('throttled_time') / 1e6,
    };
  }

  /**
   * Moves every process still inside back to the root cgroup and removes every group; safe
   * to call twice and after a failure. Throws `cgroup` naming a group that stays.
   */
  async release(): Promise<void> {
    this.released = true;
    await removeGroup(this.path);
  }
}

/** Moves what is left in `dir` and below to the root group, then removes them bottom-up. */
async function removeGroup(dir: string): Promise<void> {
  let entries: string[];
  try {
    entries = (await readdir(dir, { withFileTypes: true }))
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const sub of entries) await removeGroup(join(dir, sub));
  // A process forking while it is moved can leave a child behind: a few rounds, bounded.
  for (let round = 0; round < 20; round++) {
    const pids = (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l !== '');
    for (const pid of pids) {
      // A pid that exited meanwhile is gone already: ESRCH is fine.
      await writeFile(join(CPU_CGROUP_ROOT, 'cgroup.procs'), pid).catch(() => undefined);
    }
    try {
      await rmdir(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || round === 19) {
        throw new CpuQuotaError('cgroup', `cannot remove ${dir}: ${(err as Error).message}`);
      }
    }
    await sleep(50);
  }
}

/**
 * Removes quota groups whose owner (the pid in the name) is gone and which hold no process:
 * what a run killed before its teardown left. Groups of live owners, or with processes in
 * them (a `flotilla cluster up` whose cluster still runs), stay. Resolves with those removed.
 */
export async function sweepStaleQuotas(): Promise<string[]> {
  const names = await readdir(CPU_CGROUP_ROOT).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names.filter((n) => n.startsWith(GROUP_PREFIX))) {
    const owner = Number(/-(\d+)-[0-9a-f]{8}$/.exec(name)?.[1] ?? NaN);
    if (!Number.isInteger(owner) || (await pidAlive(owner))) continue;
    const path = join(CPU_CGROUP_ROOT, name);
    if (await holdsProcesses(path)) continue;
    await removeGroup(path).then(
      () => removed.push(name),
      () => undefined,
    );
  }
  return removed;
}

async function pidAlive(pid: number): Promise<boolean> {
  try {
    await access(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

async function holdsProcesses(dir: string): Promise<boolean> {
  const own = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  if (own.trim() !== '') return true;
  const subs = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const s of subs)
    if (s.isDirectory() && (await holdsProcesses(join(dir, s.name)))) return true;
  return false;
}

/**
 * The processes of the scale benchmark: real scheduler replicas (`node dist/scheduler/main.js`)
 * and real flotctl runs (`bin/flotctl`, a child process per command, as a user runs it), what
 * /proc says about their memory and CPU, and the cleanup that ends every one of them even
 * when the benchmark itself dies: a watchdog shell SIGKILLs the live children listed in a pid
 * file and removes the work directory as soon as this process's end closes its stdin.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, createReadStream, openSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const SCHEDULER_MAIN = fileURLToPath(new URL('../scheduler/main.js', import.meta.url));
/** bin/flotctl, from dist/bench/. */
const FLOTCTL = fileURLToPath(new URL('../../bin/flotctl', import.meta.url));
/** flotctl's own variables, unset so the caller's environment does not steer the runs. */
const NO_FLOTCTL_ENV = {
  FLOTCTL_ENDPOINT: '',
  FLOTCTL_CA_FILE: '',
  FLOTCTL_CERT_FILE: '',
  FLOTCTL_KEY_FILE: '',
};

/** Whether `child` has ended (a child killed by a signal has no exit code, only the signal). */
export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Every child this benchmark started, so that each is ended by its pid and none outlives it. */
export class Processes {
  private readonly children = new Set<ChildProcess>();
  private readonly pidFile: string;
  private readonly watchdog: ChildProcess;

  constructor(readonly workDir: string) {
    this.pidFile = join(workDir, 'children.pids');
    writeFileSync(this.pidFile, '');
    const script = `read _ignored; kill -9 $(cat '${this.pidFile}') 2>/dev/null; rm -rf '${workDir}'`;
    this.watchdog = spawn('sh', ['-c', script], { stdio: ['pipe', 'ignore', 'ignore'] });
    this.watchdog.unref();
    if (this.watchdog.stdin instanceof Socket) this.watchdog.stdin.unref();
    this.watchdog.on('error', () => undefined);
  }

  /** Follows `child` until it exits; the pid file lists only children still running. */
  track(child: ChildProcess): ChildProcess {
    this.children.add(child);
    this.writePids();
    child.once('exit', () => {
      this.children.delete(child);
      this.writePids();
    });
    return child;
  }

  /** SIGTERM to every child (schedulers resign), SIGKILL to those still there after `graceMs`. */
  async stopAll(graceMs = 5_000): Promise<void> {
    const running = [...this.children];
    const exited = running.map(
      (c) =>
        new Promise<void>((resolve) =>
          hasExited(c) ? resolve() : c.once('exit', () => resolve()),
        ),
    );
    for (const c of running) c.kill('SIGTERM');
    const timer = setTimeout(() => running.forEach((c) => c.kill('SIGKILL')), graceMs);
    await Promise.all(exited);
    clearTimeout(timer);
  }

  /** SIGKILL to every child at once (an exit handler cannot wait). */
  killNow(): void {
    for (const c of this.children) c.kill('SIGKILL');
  }

  /** Ends the watchdog, once the children are gone and the work dir is removed. */
  dismissWatchdog(): void {
    this.watchdog.kill('SIGKILL');
  }

  private writePids(): void {
    const pids = [...this.children].flatMap((c) => (c.pid === undefined ? [] : [c.pid]));
    writeFileSync(this.pidFile, pids.join(' '));
  }
}

/** A running scheduler replica. */
export interface Replica {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** host:port of its API. */
  readonly api: string;
  readonly logPath: string;
}

/** What a replica is started with (the rest are the scheduler's defaults). */
export interface ReplicaOptions {
  readonly etcdEndpoint: string;
  readonly prefix: string;
  readonly name: string;
  readonly port: number;
  readonly electionTtlS: number;
  /** `--reschedule-rate`; undefined keeps the scheduler's default. */
  readonly rescheduleRate: number | undefined;
  /** `--max-instances`: the bench scales one template past the default ceiling (10,000). */
  readonly maxInstances: number;
  /** More scheduler flags, e.g. `--http-listen=127.0.0.1:PORT` (bench:console, bench:fleet-api). Default none. */
  readonly extraArgs?: readonly string[];
}

/** Starts a replica and resolves once its API accepts connections. */
export async function startReplica(procs: Processes, opts: ReplicaOptions): Promise<Replica> {
  const logPath = join(procs.workDir, `${opts.name}.log`);
  const fd = openSync(logPath, 'a');
  // FLOTILLA_BENCH_NODE_ARGS: node flags for the replicas, e.g. --cpu-prof to profile them.
  const nodeArgs = (process.env.FLOTILLA_BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const child = spawn(
    process.execPath,
    [
      ...nodeArgs,
      SCHEDULER_MAIN,
      `--etcd-endpoints=${opts.etcdEndpoint}`,
      `--prefix=${opts.prefix}`,
      `--listen=127.0.0.1:${opts.port}`,
      `--name=${opts.name}`,
      `--election-ttl=${opts.electionTtlS}s`,
      ...(opts.rescheduleRate === undefined ? [] : [`--reschedule-rate=${opts.rescheduleRate}`]),
      `--max-instances=${opts.maxInstances}`,
      ...(opts.extraArgs ?? []),
    ],
    // stdout into the log too: what node's own flags print (--trace-gc) lands beside the logs.
    { stdio: ['ignore', fd, fd] },
  );
  closeSync(fd);
  procs.track(child);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`scheduler ${opts.name} did not start`);
  const api = `127.0.0.1:${opts.port}`;
  const deadline = Date.now() + 30_000;
  while (!(await accepts(opts.port))) {
    if (hasExited(child) || Date.now() > deadline) {
      throw new Error(`scheduler ${opts.name} did not serve ${api}:\n${logTail(logPath, 20)}`);
    }
    await sleep(100);
  }
  return { name: opts.name, child, pid, api, logPath };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => (socket.destroy(), resolve(false)));
  });
}

/** The last `n` lines of a log file ('' when it cannot be read). */
export function logTail(path: string, n: number): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

/**
 * The warn and error lines of a replica's pino log, counted by what they say (the error's
 * message, else the log message, cut to 160 characters), most frequent first. Read line by
 * line: at 100,000 units the info lines alone run to many megabytes.
 */
export async function logProblems(path: string): Promise<{ what: string; count: number }[]> {
  const counts = new Map<string, number>();
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      if (!/"level":[4-6]\d/.test(line)) continue;
      let what = line.slice(0, 160);
      try {
        const entry = JSON.parse(line) as { msg?: unknown; err?: { message?: unknown } };
        const text = entry.err?.message ?? entry.msg;
        if (typeof text === 'string') what = text.slice(0, 160);
      } catch {
        // not JSON: counted by its first characters
      }
      counts.set(what, (counts.get(what) ?? 0) + 1);
    }
  } catch {
    return []; // no log (the replica never started)
  }
  return [...counts].map(([what, count]) => ({ what, count })).sort((a, b) => b.count - a.count);
}

/** One finished (or killed) flotctl run. */
export interface FlotctlRun {
  /** Exit code; null when it was killed (timed out). */
  readonly code: number | null;
  /** Wall time from spawn to exit. */
  readonly ms: number;
  /** Lines printed on stdout. */
  readonly lines: number;
  /** Lines whose third column (list-units' ACTIVE) is `active`. */
  readonly activeRows: number;
  /** When a stdout line starting with `markPrefix` was complete, ms after spawn. */
  readonly markMs: number | undefined;
  /** The first 2 KiB of stdout and the last 2 KiB of stderr, for reports. */
  readonly head: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** Options of {@link flotctl}. */
export interface FlotctlOptions {
  /** Killed after this long. */
  readonly timeoutMs: number;
  /** Notes when a line starting with this appears (flotctl scale's `Scaled ...`). */
  readonly markPrefix?: string;
}

/**
 * Runs `bin/flotctl --endpoint API --request-timeout T ARGS...` as a user would, counting its
 * output as it streams (a 100,000-row table is never held whole). The request timeout is the
 * run's own, so a slow API call is measured rather than cut at flotctl's 10 s default.
 */
export function flotctl(
  procs: Processes,
  api: string,
  args: readonly string[],
  opts: FlotctlOptions,
): Promise<FlotctlRun> {
  const started = Date.now();
  const requestTimeout = `${Math.ceil(opts.timeoutMs / 1000)}s`;
  const child = spawn(
    process.execPath,
    [FLOTCTL, '--endpoint', api, '--request-timeout', requestTimeout, ...args],
    { env: { ...process.env, ...NO_FLOTCTL_ENV }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  procs.track(child);
  let carry = '';
  let head = '';
  let stderr = '';
  let lines = 0;
  let activeRows = 0;
  let markMs: number | undefined;
  let timedOut = false;
  const onLine = (line: string): void => {
    lines += 1;
    if (opts.markPrefix !== undefined && markMs === undefined && line.startsWith(opts.markPrefix)) {
      markMs = Date.now() - started;
    }
    if (line.split(/\s+/, 3)[2] === 'active') activeRows += 1;
  };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    if (head.length < 2048) head += chunk.slice(0, 2048 - head.length);
    const parts = (carry + chunk).split('\n');
    carry = parts.pop() ?? '';
    parts.forEach(onLine);
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-2048);
  });
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs);
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      if (carry !== '') onLine(carry);
      const ms = Date.now() - started;
      resolve({ code, ms, lines, activeRows, markMs, head, stderr, timedOut });
    });
  });
}

/** Why a run failed, in one line, for the report ('' when it exited 0). */
export function failureOf(run: FlotctlRun): string {
  if (run.timedOut) return `flotctl killed after ${Math.round(run.ms / 1000)} s`;
  if (run.code === 0) return '';
  const last = run.stderr.trim().split('\n').pop() ?? '';
  return `flotctl exit ${run.code}: ${last.slice(0, 300)}`;
}

/** Resident memory of `pid` (VmRSS), in bytes; undefined when it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] === undefined ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined;
  }
}

const CLOCK_TICKS: number = clockTicks();

function clockTicks(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

/** CPU time `pid` has used (user + system), in seconds; undefined when it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces: state is
    // field 3, utime field 14 and stime field 15 (proc(5)).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return Number.isFinite(utime + stime) ? (utime + stime) / CLOCK_TICKS : undefined;
  } catch {
    return undefined;
  }
}

/** How a wait ended: when the condition held, or why it never did. */
export type WaitResult = { readonly at: number } | { readonly reason: string };

/**
 * Polls `check` every `pollMs` (default 20) until it holds, `deadline` (Unix ms) passes, or
 * `giveUp` returns a reason (e.g. nothing has changed for a long time and never will).
 */
export async function waitUntil(
  check: () => boolean,
  deadline: number,
  opts: { pollMs?: number; giveUp?: () => string | undefined } = {},
): Promise<WaitResult> {
  const started = Date.now();
  for (;;) {
    if (check()) return { at: Date.now() };
    const why = opts.giveUp?.();
    if (why !== undefined) return { reason: why };
    if (Date.now() > deadline) {
      return { reason: `timed out after ${Math.round((Date.now() - started) / 1000)} s` };
    }
    await sleep(opts.pollMs ?? 20);
  }
}

/** The median of `xs` (the lower middle one for an even count); undefined when empty. */
export function median(xs: readonly number[]): number | undefined {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

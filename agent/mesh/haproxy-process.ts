/**
 * The machine's one HAProxy, supervised by the agent: master-worker mode (`-W -S <master
 * socket>`) with its configuration, sockets and pid file in a directory of the agent's private
 * state (0700). Started after any HAProxy left from the same directory (an agent that was
 * killed) is stopped, so two never bind the same ports; restarted with backoff when it dies;
 * reloaded through the master socket, with the outcome read back from `show proc` (a failed
 * reload leaves the old worker serving and bumps the master's failed count); stopped with the
 * agent.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { haproxyCommand, parseShowProc, type ProcStatus } from './haproxy-socket.js';

/** Options of a {@link HaproxyProcess}. */
export interface HaproxyProcessOptions {
  /** The haproxy executable. */
  readonly binary: string;
  /** Its private directory (created 0700): haproxy.cfg, master.sock, stats.sock, haproxy.pid. */
  readonly dir: string;
  /** The configuration to (re)start or reload with, rendered when needed. */
  readonly config: () => string;
  /** Called after HAProxy was restarted by the supervisor (its runtime state is the file's). */
  readonly onRestarted?: () => void;
  /** Backoff between restarts after a death: doubles from min to max. Default 500 ms - 30 s. */
  readonly restartMinMs?: number;
  readonly restartMaxMs?: number;
  /** How long a start or reload may take. Default 10 s. */
  readonly readyTimeoutMs?: number;
}

/** util-linux's setpriv, to give HAProxy a parent-death signal. */
const SETPRIV = '/usr/bin/setpriv';

/** stderr kept for error messages: the last 4 KiB. */
const STDERR_TAIL = 4096;

/** One supervised HAProxy. {@link start}, {@link reload}, {@link stop}. */
export class HaproxyProcess {
  readonly configPath: string;
  readonly masterSocket: string;
  readonly statsSocket: string;
  private readonly pidPath: string;
  private child: ChildProcess | undefined;
  private stderr = '';
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private backoffMs: number;
  private startedAt = 0;
  /** Restarts after a death, for logs and tests. */
  restarts = 0;

  constructor(
    private readonly opts: HaproxyProcessOptions,
    private readonly log: Logger,
  ) {
    this.configPath = join(opts.dir, 'haproxy.cfg');
    this.masterSocket = join(opts.dir, 'master.sock');
    this.statsSocket = join(opts.dir, 'stats.sock');
    this.pidPath = join(opts.dir, 'haproxy.pid');
    this.backoffMs = opts.restartMinMs ?? 500;
  }

  /** The master's pid while it runs. */
  get pid(): number | undefined {
    return this.child?.exitCode === null ? this.child.pid : undefined;
  }

  /** Stops a leftover HAProxy of this directory, then starts one; rejects if it cannot run. */
  async start(): Promise<void> {
    await mkdir(this.opts.dir, { recursive: true, mode: 0o700 });
    await chmod(this.opts.dir, 0o700);
    await stopLeftovers(this.configPath, this.log);
    await this.spawnAndWait();
  }

  /**
   * Writes the configuration and reloads; resolves with undefined when the new worker serves,
   * or with what HAProxy said when the reload failed (the old worker then still serves).
   */
  async reload(): Promise<string | undefined> {
    if (this.pid === undefined) return 'haproxy is not running (restarting)';
    const before = await this.procStatus();
    await this.writeConfig();
    this.stderr = '';
    await haproxyCommand(this.masterSocket, ['reload']).catch(() => '');
    const deadline = performance.now() + (this.opts.readyTimeoutMs ?? 10_000);
    while (performance.now() < deadline) {
      await sleep(50);
      const now = await this.procStatus().catch(() => undefined);
      if (now === undefined || now.reloads <= (before?.reloads ?? -1)) continue;
      if (now.failedReloads > (before?.failedReloads ?? 0)) return this.failure('reload failed');
      const fresh = now.workers.find((w) => w.reloads === 0);
      if (fresh !== undefined && (await this.workerPid()) === fresh.pid) return undefined;
    }
    return this.failure(`reload not done in ${this.opts.readyTimeoutMs ?? 10_000} ms`);
  }

  /** Stops HAProxy (its connections end) and the supervision. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
    // Workers end with their master; any that did not (a hung one) are ended here.
    await stopLeftovers(this.configPath, this.log);
  }

  /** The master's `show proc`, parsed. */
  async procStatus(): Promise<ProcStatus | undefined> {
    return parseShowProc(await haproxyCommand(this.masterSocket, ['show proc']));
  }

  private async workerPid(): Promise<number | undefined> {
    const info = await haproxyCommand(this.statsSocket, ['show info'], {
      timeoutMs: 1_000,
    }).catch(() => '');
    const m = /^Pid:\s*(\d+)/m.exec(info);
    return m === null ? undefined : Number(m[1]);
  }

  private failure(what: string): string {
    // HAProxy's own words, e.g. "cannot bind socket (Address already in use) [0.0.0.0:8080]".
    const alerts = this.stderr
      .split('\n')
      .filter((l) => l.includes('[ALERT]'))
      .map((l) => l.replace(/^\[ALERT\]\s*\(\d+\)\s*:\s*/, '').trim());
    return alerts.length > 0 ? `${what}: ${alerts.join('; ').slice(0, 500)}` : what;
  }

  private async writeConfig(): Promise<void> {
    const tmp = `${this.configPath}.tmp`;
    await writeFile(tmp, this.opts.config(), { mode: 0o600 });
    await rename(tmp, this.configPath);
  }

  private async spawnAndWait(): Promise<void> {
    await this.writeConfig();
    this.stderr = '';
    const args = [
      '-W',
      '-S',
      `${this.masterSocket},mode,600`,
      '-f',
      this.configPath,
      '-p',
      this.pidPath,
    ];
    // An agent that is killed takes its HAProxy along (the kernel's parent-death signal, set by
    // util-linux's setpriv, which then runs haproxy in its place); without setpriv the next
    // agent stops the leftover at its start.
    const child = existsSync(SETPRIV)
      ? spawn(SETPRIV, ['--pdeathsig', 'SIGTERM', this.opts.binary, ...args], {
          stdio: ['ignore', 'ignore', 'pipe'],
        })
      : spawn(this.opts.binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    this.startedAt = performance.now();
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-STDERR_TAIL);
    });
    child.once('error', (err) => {
      this.stderr += `\n[ALERT] (0) : ${err.message}`;
    });
    child.once('exit', (code, signal) => this.exited(child, code, signal));
    const deadline = performance.now() + (this.opts.readyTimeoutMs ?? 10_000);
    while (performance.now() < deadline) {
      await sleep(50);
      if (child.exitCode !== null || child.signalCode !== null || this.child !== child) {
        throw new Error(this.failure('haproxy exited at start'));
      }
      const status = await this.procStatus().catch(() => undefined);
      const worker = status?.workers[0];
      if (worker !== undefined && (await this.workerPid()) === worker.pid) {
        this.log.info({ pid: child.pid, dir: this.opts.dir }, 'mesh: haproxy running');
        return;
      }
    }
    child.kill('SIGKILL');
    throw new Error(this.failure('haproxy not ready in time'));
  }

  private exited(child: ChildProcess, code: number | null, signal: string | null): void {
    if (this.stopped || this.child !== child) return;
    this.child = undefined;
    // A run that lasted a minute starts the backoff over.
    if (performance.now() - this.startedAt > 60_000) this.backoffMs = this.opts.restartMinMs ?? 500;
    const wait = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.opts.restartMaxMs ?? 30_000);
    this.log.warn(
      { code, signal, restartInMs: wait, said: this.failure('') },
      'mesh: haproxy died; restarting',
    );
    this.restartTimer = setTimeout(() => void this.restart(), wait);
  }

  private async restart(): Promise<void> {
    if (this.stopped) return;
    try {
      await stopLeftovers(this.configPath, this.log);
      await this.spawnAndWait();
      this.restarts++;
      this.opts.onRestarted?.();
    } catch (err) {
      this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'mesh: restart');
      if (this.child !== undefined && this.child.exitCode === null) return; // exit handler runs
      if (this.child === undefined && !this.stopped) {
        this.restartTimer = setTimeout(() => void this.restart(), this.backoffMs);
      }
    }
  }
}

/**
 * Ends every process started with `configPath` (a master and workers left by an agent that was
 * killed): SIGTERM, then SIGKILL after 5 s. The path is in the agent's private directory, so a
 * process naming it is one of ours.
 */
async function stopLeftovers(configPath: string, log: Logger): Promise<void> {
  const pids = await processesNaming(configPath);
  if (pids.length === 0) return;
  log.info({ pids }, 'mesh: stopping the haproxy left by an earlier agent');
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = performance.now() + 5_000;
  while (performance.now() < deadline) {
    if ((await processesNaming(configPath)).length === 0) return;
    await sleep(50);
  }
  for (const pid of await processesNaming(configPath)) signal(pid, 'SIGKILL');
}

async function processesNaming(configPath: string): Promise<number[]> {
  const out: number[] = [];
  const entries = await readdir('/proc').catch(() => [] as string[]);
  for (const entry of entries) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const args = cmdline.split('\0');
    if (args.includes(configPath) && args.includes('-W')) out.push(Number(entry));
  }
  return out;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Gone already.
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The cluster's processes: spawned detached (own session, stdio to a log file, unref'd) so
 * they outlive `flotilla cluster up`; recognised later by pid AND the kernel's start time, so
 * a pid the kernel has since given to another program is never signalled.
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { access, constants, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClusterError, type ProcessRecord } from './state.js';

/**
 * The start time of `pid` (field 22 of /proc/<pid>/stat, clock ticks since boot), or
 * undefined when no such process exists. A zombie still has one: callers treat a zombie as
 * gone through {@link isRunning}.
 */
export async function startTimeOf(pid: number): Promise<string | undefined> {
  const stat = await procStat(pid);
  return stat?.startTime;
}

async function procStat(pid: number): Promise<{ state: string; startTime: string } | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields restart after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = rest[0];
  const startTime = rest[19];
  return state === undefined || startTime === undefined ? undefined : { state, startTime };
}

/** True when the recorded process still runs (same pid, same start time, not a zombie). */
export async function isRunning(proc: ProcessRecord): Promise<boolean> {
  if (proc.pid === undefined || proc.startTime === undefined) return false;
  const stat = await procStat(proc.pid);
  return stat !== undefined && stat.startTime === proc.startTime && stat.state !== 'Z';
}

/**
 * Spawns `proc.command` detached with stdout and stderr appended to its log, and records its
 * pid and start time in `proc`. Rejects (`start-failed`) when the program cannot be run.
 */
export async function spawnDetached(
  proc: ProcessRecord,
  opts: {
    cwd: string;
    env?: NodeJS.ProcessEnv;
    /** Run before the command and exec'ing it in place (a CPU quota's); not recorded. */
    prefix?: readonly string[];
  },
): Promise<void> {
  const [program, ...args] = [...(opts.prefix ?? []), ...proc.command];
  if (program === undefined) throw new ClusterError('start-failed', `${proc.name}: no command`);
  await mkdir(dirname(proc.logPath), { recursive: true });
  const fd = openSync(proc.logPath, 'a');
  let pid: number;
  try {
    const child = spawn(program, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid ?? -1));
      child.once('error', (err) =>
        reject(
          new ClusterError('start-failed', `${proc.name}: cannot run ${program}: ${err.message}`),
        ),
      );
    });
    child.unref();
  } finally {
    closeSync(fd);
  }
  proc.pid = pid;
  proc.startTime = await startTimeOf(pid);
}

/**
 * Sends `signal` to the recorded process if it still runs and waits up to `graceMs` for it to
 * end; then SIGKILLs it and waits again. Resolves true when it had to be killed. Clears the
 * record's pid either way.
 */
export async function stopProcess(
  proc: ProcessRecord,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 30_000,
): Promise<boolean> {
  let killed = false;
  if (await isRunning(proc)) {
    signalRecorded(proc, 'SIGCONT');
    signalRecorded(proc, signal);
    if (!(await waitGone(proc, graceMs)) && signal !== 'SIGKILL') {
      killed = true;
      signalRecorded(proc, 'SIGKILL');
      await waitGone(proc, 10_000);
    }
  }
  proc.pid = undefined;
  proc.startTime = undefined;
  return killed;
}

/** Signals the recorded process (not its group); false when it is not ours or gone. */
export function signalRecorded(proc: ProcessRecord, signal: NodeJS.Signals): boolean {
  if (proc.pid === undefined) return false;
  try {
    process.kill(proc.pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Polls until the recorded process is gone; false when `timeoutMs` passed first. */
export async function waitGone(proc: ProcessRecord, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (await isRunning(proc)) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

/** The last `lines` lines of a log file, for error messages ('' when unreadable). */
export async function logTail(path: string, lines = 20): Promise<string> {
  try {
    const text = await readFile(path, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** The full path of `program` on PATH, or undefined. */
export async function which(program: string): Promise<string | undefined> {
  for (const dir of (process.env['PATH'] ?? '/usr/bin:/bin').split(':')) {
    if (dir === '') continue;
    const path = `${dir}/${program}`;
    try {
      await access(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** What a finished tool run printed, and how it ended. */
export interface ToolResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a short-lived tool (`ip`, `runc`) to completion with a deadline; never rejects. */
export function runTool(program: string, args: readonly string[], timeoutMs = 30_000) {
  return new Promise<ToolResult>((resolve) => {
    execFile(program, [...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 127;
      resolve({ code, stdout, stderr: stderr || (err?.message ?? '') });
    });
  });
}

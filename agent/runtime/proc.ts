/**
 * Reading /proc: whether a process is still the one we started (pids are reused, so a pid is
 * only trusted together with its start time), its argv, its process group, and signal names.
 */
import { readFile, readdir } from 'node:fs/promises';
import { constants } from 'node:os';

/** What /proc/<pid>/stat says about a live process. */
export interface ProcStat {
  readonly pid: number;
  /** One letter: R, S, D, Z (zombie), T... */
  readonly state: string;
  readonly pgid: number;
  /** Clock ticks after boot: with the pid, identifies one process for the host's uptime. */
  readonly startTime: number;
}

/** The stat of `pid`, or undefined when there is no such process. */
export async function procStat(pid: number): Promise<ProcStat | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may contain spaces and parentheses: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = rest[0] ?? '?';
  const pgid = Number(rest[2]);
  const startTime = Number(rest[19]);
  return { pid, state, pgid, startTime };
}

/**
 * True when `pid` runs and is not a zombie, and (when given) started at `startTime`: a
 * recycled pid is not our process.
 */
export async function isAlive(pid: number, startTime?: number): Promise<boolean> {
  const stat = await procStat(pid);
  if (stat === undefined || stat.state === 'Z' || stat.state === 'X') return false;
  return startTime === undefined || stat.startTime === startTime;
}

/** argv of `pid` as the kernel shows it, or undefined when it is gone. */
export async function procCmdline(pid: number): Promise<string[] | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    const parts = raw.split('\0');
    if (parts.at(-1) === '') parts.pop();
    return parts;
  } catch {
    return undefined;
  }
}

/** True when `pid` is in the cgroup `path` (relative to the controllers' mount points). */
export async function isInCgroup(pid: number, path: string): Promise<boolean> {
  const text = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
  return text.split('\n').some((line) => line.endsWith(`:${path}`));
}

/** Live members of process group `pgid`. Racy by nature: members may come and go. */
export async function groupMembers(pgid: number): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = await procStat(pid);
    if (stat !== undefined && stat.pgid === pgid && stat.state !== 'Z') out.push(pid);
  }
  return out;
}

/** Sends `signal` to `pid`, ignoring a process that is already gone. */
export function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

const BY_NUMBER = new Map<number, string>(
  Object.entries(constants.signals).map(([name, num]) => [num, name]),
);

/** `SIGTERM` for 15; undefined for numbers that are no signal. */
export function signalName(num: number): string | undefined {
  return BY_NUMBER.get(num);
}

/** True for names such as `SIGTERM` (and `TERM`, normalised by {@link normalizeSignal}). */
export function isSignalName(name: string): name is NodeJS.Signals {
  return Object.hasOwn(constants.signals, name);
}

/** `TERM`, `sigterm`, `SIGTERM` and `15` all become `SIGTERM`; undefined when unknown. */
export function normalizeSignal(text: string): NodeJS.Signals | undefined {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) {
    const name = signalName(Number(trimmed));
    return name !== undefined && isSignalName(name) ? name : undefined;
  }
  const upper = trimmed.toUpperCase();
  const name = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  return isSignalName(name) ? name : undefined;
}

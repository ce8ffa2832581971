/**
 * The pid-1 problem of containers: the kernel drops every signal sent to the init process of
 * a pid namespace unless that process installed a handler for it (only SIGKILL and SIGSTOP
 * get through). A unit's program is pid 1 of its container, so `sleep`, or a Python server
 * that never set a SIGTERM handler, would ignore KillSignal= and only die at TimeoutStopSec.
 * On a normal host the same signal would have ended it at once (its default action), and
 * that is what a unit file means. So: when the program has neither a handler nor an explicit
 * ignore for the signal and the signal's default action ends a process, the driver ends it
 * with SIGKILL and reports it as ended by the original signal.
 */
import { readFile } from 'node:fs/promises';
import { constants } from 'node:os';

/** Signals whose default action terminates the process (with or without a core dump). */
const FATAL_BY_DEFAULT: ReadonlySet<string> = new Set([
  'SIGHUP',
  'SIGINT',
  'SIGQUIT',
  'SIGILL',
  'SIGTRAP',
  'SIGABRT',
  'SIGBUS',
  'SIGFPE',
  'SIGUSR1',
  'SIGSEGV',
  'SIGUSR2',
  'SIGPIPE',
  'SIGALRM',
  'SIGTERM',
  'SIGSTKFLT',
  'SIGXCPU',
  'SIGXFSZ',
  'SIGVTALRM',
  'SIGPROF',
  'SIGIO',
  'SIGPOLL',
  'SIGPWR',
  'SIGSYS',
]);

function mask(status: string, field: string): bigint {
  const hex = new RegExp(`^${field}:\\s*([0-9a-fA-F]+)`, 'm').exec(status)?.[1];
  return hex === undefined ? 0n : BigInt(`0x${hex}`);
}

/**
 * True when `signal` sent to `pid` (a namespace's init) is dropped by the kernel although
 * the program left it at its default action, which would have terminated it.
 */
export async function isDroppedByInit(pid: number, signal: NodeJS.Signals): Promise<boolean> {
  if (!FATAL_BY_DEFAULT.has(signal) || pid <= 0) return false;
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  if (status === '') return false;
  const bit = 1n << BigInt(constants.signals[signal] - 1);
  return ((mask(status, 'SigIgn') | mask(status, 'SigCgt')) & bit) === 0n;
}

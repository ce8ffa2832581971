/**
 * The pure half of the supervisor: how an exit is judged (systemd's rules), whether and when
 * to restart, and the state record. No I/O, no clock (times are arguments), so every rule is
 * testable on its own.
 */
import type { ExecCommand, RestartPolicy, StartLimit } from '../../../unit/model.js';
import { formatDuration } from '../../../lib/duration.js';
import type { UnitState } from '../../../proto/flotilla/v1/records.js';
import type { ExitResult } from '../../runtime/driver.js';

/** Signals systemd counts as a clean end of a service (a polite stop, a closed pipe). */
const CLEAN_SIGNALS: ReadonlySet<string> = new Set(['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGPIPE']);

/** systemd's `$SERVICE_RESULT` values that Flotilla produces. */
export type ServiceResult =
  'success' | 'exit-code' | 'signal' | 'timeout' | 'resources' | 'start-limit-hit';

/** How one exit of a main process (or oneshot step) is judged. */
export function judgeExit(exit: ExitResult, ignoreFailure = false): ServiceResult {
  if (ignoreFailure || exit.status === 0) return 'success';
  if (exit.signal !== '') return CLEAN_SIGNALS.has(exit.signal) ? 'success' : 'signal';
  return 'exit-code';
}

/** "exited with status 1", "killed by SIGKILL" — for messages and the log. */
export function describeExit(exit: ExitResult): string {
  if (exit.status < 0) return 'ended, but its exit status was lost (its shim was killed)';
  if (exit.signal !== '') return `killed by ${exit.signal}`;
  return `exited with status ${exit.status}`;
}

/** A step's failure message: `ExecStart=/bin/false (line 4) exited with status 1`. */
export function stepFailure(key: string, cmd: ExecCommand, exit: ExitResult): string {
  return `${key}=${cmd.path} (line ${cmd.line}) ${describeExit(exit)}`;
}

/** `$EXIT_CODE`/`$EXIT_STATUS` for ExecStopPost=, as systemd sets them. */
export function exitEnv(exit: ExitResult | undefined, result: ServiceResult): Map<string, string> {
  const env = new Map<string, string>([['SERVICE_RESULT', result]]);
  if (exit === undefined || exit.status < 0) return env;
  if (exit.signal !== '') {
    env.set('EXIT_CODE', 'killed');
    env.set('EXIT_STATUS', exit.signal.replace(/^SIG/, ''));
  } else {
    env.set('EXIT_CODE', 'exited');
    env.set('EXIT_STATUS', String(exit.status));
  }
  return env;
}

/** Restart= semantics; a requested stop or a permanent failure never restarts. */
export function shouldRestart(policy: RestartPolicy, result: ServiceResult): boolean {
  if (policy === 'always') return true;
  if (policy === 'on-failure') return result !== 'success';
  return false;
}

/** The restart back-off: defaults documented on {@link SupervisorTimings}. */
export interface BackoffOptions {
  /** The longest pause between restarts. */
  readonly capMs: number;
  /** The shortest: RestartSec=0 would otherwise spin a crashing unit at full CPU. */
  readonly floorMs: number;
}

/**
 * RestartSec=, doubled for every consecutive quick failure: `streak` 1 waits RestartSec, 2
 * waits twice that, ... up to the cap (or RestartSec itself when that is larger).
 */
export function backoffDelay(restartSecMs: number, streak: number, opts: BackoffOptions): number {
  const base = Math.max(restartSecMs, opts.floorMs);
  const doubled = base * 2 ** Math.min(Math.max(streak - 1, 0), 30);
  return Math.min(doubled, Math.max(opts.capMs, base));
}

/**
 * The starts of `starts` (Unix ms, oldest first) that count against `limit` at `now`: those
 * within its interval, at most its burst (the newest). Empty when the limit is off.
 */
export function recentStarts(starts: readonly number[], now: number, limit: StartLimit): number[] {
  if (limit.burst <= 0 || limit.intervalMs <= 0) return [];
  return starts.filter((at) => now - at < limit.intervalMs).slice(-limit.burst);
}

/** A start at `now` would be one more than `limit` allows (`recent` from {@link recentStarts}). */
export function startLimitHit(recent: readonly number[], limit: StartLimit): boolean {
  return limit.burst > 0 && limit.intervalMs > 0 && recent.length >= limit.burst;
}

/**
 * Why a unit ended failed at its start limit: `start limit hit: 6 starts within 3.1s (more
 * than StartLimitBurst=5 in StartLimitIntervalSec=10s); last failure: ...`.
 */
export function startLimitMessage(
  recent: readonly number[],
  now: number,
  limit: StartLimit,
  lastFailure: string,
): string {
  const within = formatDuration(now - (recent[0] ?? now));
  return (
    `start limit hit: ${recent.length + 1} starts within ${within} (more than ` +
    `StartLimitBurst=${limit.burst} in StartLimitIntervalSec=${formatDuration(limit.intervalMs)}); ` +
    `last failure: ${lastFailure}; fix the unit, then flotctl stop and flotctl start it`
  );
}

/** The state of a unit that has not run yet on this machine. */
export function initialState(
  name: string,
  machine: string,
  hash: string,
  containerId: string,
  now: number,
): UnitState {
  return {
    name,
    machine,
    hash,
    loadState: 'loaded',
    activeState: 'inactive',
    subState: 'dead',
    containerId,
    image: '',
    pid: 0,
    exitStatus: -1,
    exitSignal: '',
    restarts: 0,
    since: BigInt(now),
    message: '',
    health: '',
    healthFailures: 0,
    healthChecks: [],
    restartReason: '',
  };
}

/** The fields of a state change; `since` follows from them. */
export type StateChange = Partial<Omit<UnitState, 'name' | 'machine' | 'since'>>;

/**
 * `state` with `change` applied; `since` moves only when the active state changes, as the
 * record's contract says. Returns the same object when nothing changed.
 */
export function applyChange(state: UnitState, change: StateChange, now: number): UnitState {
  const next: UnitState = { ...state, ...change };
  const changed = (Object.keys(change) as (keyof StateChange)[]).some((k) => state[k] !== next[k]);
  if (!changed) return state;
  if (next.activeState !== state.activeState) next.since = BigInt(now);
  return next;
}

/**
 * The contract between a supervisor and one run of its unit (run.ts): what the
 * run may use and report, how it ended, and how a new agent resumes a run it found.
 */
import type { HealthCheckResult } from '../../../proto/flotilla/v1/records.js';
import type { ExitResult, MainProcess, RuntimeDriver, UnitContext } from '../../runtime/driver.js';
import type { ServiceResult, StateChange } from './policy.js';

/** What a run needs from its supervisor. */
export interface RunHost {
  readonly ctx: UnitContext;
  readonly driver: RuntimeDriver;
  readonly startTimeoutMs: number;
  /** Aborted when a stop is requested. */
  readonly stopSignal: AbortSignal;
  /** Aborted when the agent lets go of the unit without stopping it. */
  readonly detachSignal: AbortSignal;
  now(): number;
  set(change: StateChange): void;
  note(text: string): void;
  /** Records the step about to start, before its process exists (for adoption). */
  persist(step: number, startedAt: number): Promise<void>;
  /** The runtime's own last error in the unit's log (e.g. runc's), or ''. */
  logReason(): Promise<string>;
  /** The health checks the state record holds now (kept across a restart). */
  healthChecks(): readonly HealthCheckResult[];
}

/** A main process (or oneshot step) found running or ended by a new agent. */
export interface Resume {
  readonly main: MainProcess;
  readonly step: number;
  readonly startedAt: number;
  /** Set when it ended while no agent watched. */
  readonly exit?: ExitResult;
}

/** How a run ended. */
export interface Outcome {
  readonly result: ServiceResult;
  /** Empty on success; why it failed otherwise. */
  readonly message: string;
  readonly exit?: ExitResult;
  /** How long the main process ran (resets the restart back-off when long). */
  readonly ranMs: number;
  /** A failure that a restart cannot fix (bad User=, missing binary...). */
  readonly permanent: boolean;
  /** A oneshot that completed: it stays active (exited) until stopped. */
  readonly completed: boolean;
  /** HealthOnFailure=restart ended it: restart whatever Restart= says. */
  readonly restart?: boolean;
}

/** Thrown inside a run when the agent detaches: ends it silently. */
export class Detached extends Error {}

/** `promise`'s value, or undefined when it takes longer than `ms`. */
export function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), Math.max(0, ms));
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Whether `err` means the agent detached (the run must end without a word). */
export function isDetached(err: unknown): boolean {
  return err instanceof Detached;
}

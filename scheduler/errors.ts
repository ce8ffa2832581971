/**
 * The scheduler daemon's own error type. Store failures stay StoreErrors (see store/errors.ts);
 * these are the daemon's decisions, each with a stable `code`.
 */

/**
 * - `deposed`: the leader term ended (lease lost, key deleted, resigned, fence refused), so a
 *   commit was abandoned before it wrote anything more.
 * - `closed`: the scheduler is shutting down.
 * - `election`: the election key could not be created as expected (a bug or a foreign writer
 *   under `election/`).
 */
export type SchedulerErrorCode = 'deposed' | 'closed' | 'election';

/** A scheduler failure. Match on `code`, never on `message`. */
export class SchedulerError extends Error {
  readonly code: SchedulerErrorCode;

  constructor(code: SchedulerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SchedulerError';
    this.code = code;
  }
}

/** True when `err` is a SchedulerError (with the given code, when one is given). */
export function isSchedulerError(err: unknown, code?: SchedulerErrorCode): err is SchedulerError {
  return err instanceof SchedulerError && (code === undefined || err.code === code);
}

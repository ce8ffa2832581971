/**
 * The agent runtime's one error type. Everything that can go wrong while preparing or running a
 * unit is a `RuntimeError` with a stable `code`; the supervisor turns it into a failed state
 * whose message is this error's message, so messages are written for the operator.
 */

/** Stable codes: callers branch on these, never on the message text. */
export type RuntimeErrorCode =
  /** User= names no account in the passwd file the unit sees. */
  | 'bad-user'
  /** The program of an exec line does not exist or is not executable where the unit runs. */
  | 'missing-program'
  /** WorkingDirectory= does not exist where the unit runs. */
  | 'bad-working-directory'
  /** A non-optional EnvironmentFile= cannot be read. */
  | 'missing-environment-file'
  /** The unit name or machine id cannot be used in paths and container ids. */
  | 'invalid-name'
  /** Something the driver needs (runc, root) is missing on this host. */
  | 'unsupported'
  /** runc (or the shim) failed for a reason outside the unit's control. */
  | 'runtime-failed'
  /** The main process did not come up within the start timeout. */
  | 'start-timeout';

/** Codes that describe the unit's own definition: retrying cannot help until it changes. */
const PERMANENT: ReadonlySet<RuntimeErrorCode> = new Set([
  'bad-user',
  'missing-program',
  'bad-working-directory',
  'missing-environment-file',
  'invalid-name',
  'unsupported',
]);

/** A failure to prepare or run a unit; `message` says why in words a person can act on. */
export class RuntimeError extends Error {
  override readonly name = 'RuntimeError';
  readonly code: RuntimeErrorCode;

  constructor(code: RuntimeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** True for runtime errors (as opposed to bugs). */
export function isRuntimeError(err: unknown): err is RuntimeError {
  return err instanceof RuntimeError;
}

/**
 * True when the error comes from the unit's definition (bad User=, missing binary...), so a
 * restart policy must not retry it: it would fail the same way forever.
 */
export function isPermanentFailure(err: unknown): boolean {
  return isRuntimeError(err) && PERMANENT.has(err.code);
}

/** The message of any thrown value, for states and logs. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

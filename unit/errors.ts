/**
 * The unit-file language's one error type. Every problem a user can make in a unit file is a
 * `UnitError` with a stable `code` (for programs) and a message naming the problem in words a
 * user can act on (for people). Nothing in unit/ throws anything else on bad input.
 */

/** Stable codes: callers branch on these, never on the message text. */
export type UnitErrorCode =
  | 'syntax'
  | 'invalid-name'
  | 'unknown-key'
  | 'invalid-value'
  | 'invalid-combination'
  | 'missing-value'
  | 'invalid-glob'
  /** The file is over UNIT_FILE_MAX_BYTES (limits.ts); it was not parsed. */
  | 'too-large'
  /** The file is empty, or not text at all (binary data); it was not parsed. */
  | 'not-a-unit-file';

/**
 * At most this many problems are reported per file: past that the output helps nobody, and
 * building thousands of errors for a hostile 1 MB input would cost seconds.
 */
export const MAX_PROBLEMS = 100;

/** Where an error points, when it points anywhere. */
export interface UnitErrorOptions {
  /** 1-based line in the file; 0 (the default) when the problem has no one line. */
  readonly line?: number;
  /** The file (or unit) name, when known. */
  readonly file?: string;
}

/** A problem in a unit file or unit name. `line` is 0 when the problem has no single line. */
export class UnitError extends Error {
  override readonly name = 'UnitError';
  readonly code: UnitErrorCode;
  readonly line: number;
  readonly file?: string;

  constructor(code: UnitErrorCode, message: string, options: UnitErrorOptions = {}) {
    super(message);
    this.code = code;
    this.line = options.line ?? 0;
    if (options.file !== undefined) this.file = options.file;
  }

  /** A copy that names `file`, keeping code, message and line. */
  withFile(file: string): UnitError {
    return new UnitError(this.code, this.message, { line: this.line, file });
  }
}

/** True for errors produced by the unit language (as opposed to bugs). */
export function isUnitError(err: unknown): err is UnitError {
  return err instanceof UnitError;
}

/**
 * What every `flotctl` verb is made of: the `Verb` shape, the IO it writes to and the exit
 * codes. Kept apart from main.ts so verb files import it without an import cycle.
 */

/** Exit codes: success, a problem with what was asked about, a problem with how it was asked. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Where a verb writes; tests capture these instead of the process streams. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

/** One `flotctl <verb>`: `run` gets the arguments after the verb and returns the exit code. */
export interface Verb {
  readonly name: string;
  /** One line for `flotctl --help`. */
  readonly summary: string;
  /** Full text for `flotctl <verb> --help`, starting with the usage line. */
  readonly help: string;
  run(args: readonly string[], io: CliIo): Promise<number>;
}

/** A mistake in the command line itself: reported with the usage, exit code 2. */
export class UsageError extends Error {
  readonly code = 'usage';
}

/**
 * What flotctl shares with the daemons' command lines, kept apart from options.ts (which loads
 * pino for the daemons' logs) so that flotctl starts without loading a logger it never uses.
 */

/** A command line that cannot be run: exit 2 with the usage. Shared by the daemons and flotctl. */
export class UsageError extends Error {
  readonly code = 'usage';
}

const spanUnits: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  sec: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
};

/** `5s`, `500ms`, `1m`, `1.5s`, or a plain number of seconds. */
export function parseDurationMs(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|sec|m|min|h)?$/.exec(text.trim());
  if (m === null) return undefined;
  const unit = spanUnits[m[2] ?? 's'];
  return unit === undefined ? undefined : Math.round(Number(m[1]) * unit);
}

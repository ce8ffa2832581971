/**
 * systemd's start rate limit: `StartLimitIntervalSec=` and `StartLimitBurst=` in `[Unit]`
 * (systemd's older names `StartLimitInterval=`/`StartLimitBurst=` in `[Service]` are read
 * too, `[Unit]` winning). A unit started more than the burst times within the interval, by
 * its `Restart=` or by `HealthOnFailure=restart`, ends failed instead of starting again, as
 * systemd's `start-limit-hit`. Either key at 0 turns the limit off, as in systemd.
 */
import { MAX_PROBLEMS, UnitError } from './errors.js';
import { excerpt } from './excerpt.js';
import type { StartLimit, UnitEntry } from './model.js';
import { parseTimeSpanMs, timeSpanHint } from './values.js';

/** systemd's defaults (`DefaultStartLimitIntervalSec=10s`, `DefaultStartLimitBurst=5`). */
export const START_LIMIT_DEFAULTS: StartLimit = { intervalMs: 10_000, burst: 5 };

/** The largest burst accepted: the agent keeps this many start times per unit at most. */
export const START_LIMIT_MAX_BURST = 10_000;

/** The keys read, by section; later sections win. */
export const START_LIMIT_KEYS: Readonly<Record<string, readonly string[]>> = {
  Service: ['StartLimitInterval', 'StartLimitIntervalSec', 'StartLimitBurst'],
  Unit: ['StartLimitIntervalSec', 'StartLimitBurst'],
};

/**
 * The start limit that `entries` set (the `[Service]` entries first, then the `[Unit]` ones;
 * other keys are skipped), or undefined when they set none: the agent then uses
 * {@link START_LIMIT_DEFAULTS}. Problems go to `errors`.
 */
export function parseStartLimit(
  entries: readonly UnitEntry[],
  errors: UnitError[],
): StartLimit | undefined {
  let intervalMs: number | undefined;
  let burst: number | undefined;
  for (const e of entries) {
    if (errors.length >= MAX_PROBLEMS) break;
    const value = e.value.trim();
    try {
      if (e.key === 'StartLimitBurst') burst = value === '' ? undefined : parseBurst(value, e);
      else if (e.key === 'StartLimitIntervalSec' || e.key === 'StartLimitInterval') {
        intervalMs = value === '' ? undefined : parseInterval(value, e);
      }
    } catch (err) {
      if (!(err instanceof UnitError)) throw err;
      errors.push(err);
    }
  }
  if (intervalMs === undefined && burst === undefined) return undefined;
  return {
    intervalMs: intervalMs ?? START_LIMIT_DEFAULTS.intervalMs,
    burst: burst ?? START_LIMIT_DEFAULTS.burst,
  };
}

function parseBurst(value: string, e: UnitEntry): number {
  const n = /^[0-9]{1,6}$/.test(value) ? Number(value) : NaN;
  if (!(n <= START_LIMIT_MAX_BURST)) {
    throw new UnitError(
      'invalid-value',
      `${e.key}=${excerpt(value)}: expected a whole number from 0 (no limit) to ${START_LIMIT_MAX_BURST}`,
      { line: e.line },
    );
  }
  return n;
}

function parseInterval(value: string, e: UnitEntry): number {
  const ms = parseTimeSpanMs(value);
  if (ms === undefined) {
    throw new UnitError('invalid-value', timeSpanHint(e.key, value), { line: e.line });
  }
  if (ms === Infinity) {
    throw new UnitError(
      'invalid-value',
      `${e.key}=infinity: expected a finite time span such as 10s or 5min (0 turns the limit off)`,
      { line: e.line },
    );
  }
  return ms;
}

/**
 * Health checks with podman Quadlet's keys: `HealthCmd=`, `HealthInterval=`,
 * `HealthTimeout=`, `HealthRetries=`, `HealthStartPeriod=`, `HealthOnFailure=`. Accepted in
 * `[Service]` for every unit; the parser hands this module the entries of every section that
 * may carry them (see `HEALTH_SECTIONS`), so `[Container]` joins by adding its name there.
 *
 * The command runs through `/bin/sh -c` (podman's `CMD-SHELL` form), inside the unit's
 * container. `HealthCmd=none` (or an empty value) turns the check off, as in podman.
 */
import { MAX_PROBLEMS, UnitError } from './errors.js';
import { excerpt } from './excerpt.js';
import type { HealthCheck, HealthOnFailure, UnitEntry, UnitName } from './model.js';
import { expandSpecifiers } from './specifiers.js';
import { parseTimeSpanMs, timeSpanHint } from './values.js';

/** Sections whose Health* keys count, in file order of precedence (later wins). */
export const HEALTH_SECTIONS: readonly string[] = ['Service', 'Container'];

/** podman's defaults: every 30 s, 30 s to answer, unhealthy after 3 failures in a row. */
export const HEALTH_DEFAULTS = {
  intervalMs: 30_000,
  timeoutMs: 30_000,
  retries: 3,
  startPeriodMs: 0,
  onFailure: 'none',
} as const;

/** The longest HealthCmd= accepted, in characters (it travels in every state record's unit). */
export const HEALTH_CMD_MAX = 4096;
/** Bounds that keep a check from spinning or from never answering. */
const MIN_INTERVAL_MS = 100;
const MAX_RETRIES = 1000;

const ON_FAILURE: readonly HealthOnFailure[] = ['none', 'kill', 'restart', 'stop'];

interface Draft {
  command: string;
  commandLine: number;
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
  onFailure: HealthOnFailure;
  /** The first line of a Health* key other than HealthCmd=, for "has no HealthCmd=". */
  firstOther: { key: string; line: number } | undefined;
}

function invalid(key: string, value: string, expected: string, line: number): UnitError {
  return new UnitError('invalid-value', `${key}=${excerpt(value)}: ${expected}`, { line });
}

function finiteSpan(key: string, value: string, line: number, minMs: number): number {
  const ms = parseTimeSpanMs(value);
  if (ms === undefined) throw new UnitError('invalid-value', timeSpanHint(key, value), { line });
  if (ms === Infinity || ms < minMs) {
    throw invalid(key, value, `expected a finite time span of at least ${minMs} ms`, line);
  }
  return ms;
}

type Handler = (d: Draft, value: string, line: number, key: string) => void;

const HANDLERS: Readonly<Record<string, Handler>> = {
  HealthCmd(d, v, line, key) {
    if (v.length > HEALTH_CMD_MAX) {
      throw invalid(key, v, `longer than ${HEALTH_CMD_MAX} characters; put it in a script`, line);
    }
    d.command = v === 'none' ? '' : v;
    d.commandLine = line;
  },
  HealthInterval(d, v, line, key) {
    // podman's "disable": no periodic checks, which here means no check at all.
    d.intervalMs = v === 'disable' ? 0 : finiteSpan(key, v, line, MIN_INTERVAL_MS);
  },
  HealthTimeout(d, v, line, key) {
    d.timeoutMs = finiteSpan(key, v, line, 1);
  },
  HealthStartPeriod(d, v, line, key) {
    d.startPeriodMs = finiteSpan(key, v, line, 0);
  },
  HealthRetries(d, v, line, key) {
    const n = /^[0-9]{1,4}$/.test(v) ? Number(v) : NaN;
    if (!(n >= 1 && n <= MAX_RETRIES)) {
      throw invalid(key, v, `expected a whole number from 1 to ${MAX_RETRIES}`, line);
    }
    d.retries = n;
  },
  HealthOnFailure(d, v, line, key) {
    const f = ON_FAILURE.find((x) => x === v);
    if (f === undefined) throw invalid(key, v, `use one of ${ON_FAILURE.join(', ')}`, line);
    d.onFailure = f;
  },
};

/** The keys this module reads. */
export const HEALTH_KEYS: readonly string[] = Object.keys(HANDLERS);

function reset(d: Draft, key: string): void {
  if (key === 'HealthCmd') d.command = '';
  else if (key === 'HealthInterval') d.intervalMs = HEALTH_DEFAULTS.intervalMs;
  else if (key === 'HealthTimeout') d.timeoutMs = HEALTH_DEFAULTS.timeoutMs;
  else if (key === 'HealthRetries') d.retries = HEALTH_DEFAULTS.retries;
  else if (key === 'HealthStartPeriod') d.startPeriodMs = HEALTH_DEFAULTS.startPeriodMs;
  else if (key === 'HealthOnFailure') d.onFailure = HEALTH_DEFAULTS.onFailure;
}

/**
 * The health check that `entries` (the Health* keys of every section in
 * {@link HEALTH_SECTIONS}, other keys are skipped) describe, or undefined when there is none.
 * Problems go to `errors`; a Health* key without a HealthCmd= is one, so a typo in the
 * command's key does not silently leave a unit unchecked.
 */
export function parseHealthEntries(
  entries: readonly UnitEntry[],
  name: UnitName,
  errors: UnitError[],
): HealthCheck | undefined {
  const d: Draft = {
    command: '',
    commandLine: 0,
    ...HEALTH_DEFAULTS,
    firstOther: undefined,
  };
  for (const e of entries) {
    if (errors.length >= MAX_PROBLEMS) break;
    const handler = Object.hasOwn(HANDLERS, e.key) ? HANDLERS[e.key] : undefined;
    if (handler === undefined) continue;
    if (e.key !== 'HealthCmd') d.firstOther ??= { key: e.key, line: e.line };
    const value = e.key === 'HealthCmd' ? expandSpecifiers(e.value, name) : e.value.trim();
    try {
      if (value === '') reset(d, e.key);
      else handler(d, value, e.line, e.key);
    } catch (err) {
      if (!(err instanceof UnitError)) throw err;
      errors.push(err);
    }
  }
  if (d.command === '') {
    if (d.firstOther !== undefined && d.commandLine === 0) {
      const { key, line } = d.firstOther;
      errors.push(
        new UnitError(
          'invalid-combination',
          `${key}= is set but there is no HealthCmd=: add the command that checks the unit`,
          { line },
        ),
      );
    }
    return undefined;
  }
  if (d.intervalMs === 0) return undefined;
  return {
    command: d.command,
    intervalMs: d.intervalMs,
    timeoutMs: d.timeoutMs,
    retries: d.retries,
    startPeriodMs: d.startPeriodMs,
    onFailure: d.onFailure,
    line: d.commandLine,
  };
}

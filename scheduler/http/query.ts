/**
 * Query parameters read strictly: a number that is no number, a flag that is no flag, or a
 * parameter given twice is 400 naming it, never silently taken as the default.
 */
import { HttpError } from './errors.js';

/** The most one parameter may be repeated (`?name=a&name=b`). */
export const MAX_REPEATED = 10_000;

/** The single value of `key`, or undefined. */
export function param(url: URL, key: string): string | undefined {
  const all = url.searchParams.getAll(key);
  if (all.length > 1)
    throw new HttpError(
      400,
      'INVALID_ARGUMENT',
      `?${key} is given ${all.length} times; give it once`,
    );
  return all[0];
}

/** Every value of a repeatable `key`. */
export function params(url: URL, key: string): string[] {
  const all = url.searchParams.getAll(key);
  if (all.length > MAX_REPEATED) {
    throw new HttpError(
      400,
      'INVALID_ARGUMENT',
      `?${key} is given ${all.length} times; at most ${MAX_REPEATED}`,
    );
  }
  return all;
}

/** A whole number in [min, max], or `fallback` when absent. */
export function intParam(
  url: URL,
  key: string,
  fallback: number,
  min = 0,
  max = 2 ** 31 - 1,
): number {
  const raw = param(url, key);
  if (raw === undefined || raw === '') return fallback;
  const n = /^-?\d{1,12}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new HttpError(
      400,
      'INVALID_ARGUMENT',
      `?${key}=${raw.slice(0, 50)}: expected a whole number from ${min} to ${max}`,
    );
  }
  return n;
}

/** A flag: `1`/`true` on, `0`/`false`/absent off. */
export function flagParam(url: URL, key: string): boolean {
  const raw = param(url, key);
  if (raw === undefined || raw === '0' || raw === 'false') return false;
  if (raw === '' || raw === '1' || raw === 'true') return true;
  throw new HttpError(400, 'INVALID_ARGUMENT', `?${key}=${raw.slice(0, 50)}: expected 1 or 0`);
}

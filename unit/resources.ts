/**
 * `[Service]` resource limits, which are also the unit's reservation on its machine:
 * `MemoryMax=` (alias `MemoryLimit=`), `CPUQuota=`, `TasksMax=`. In the model 0 means
 * unlimited, so an explicit 0 is refused (it would read as "no limit" while meaning "none").
 */
import { UnitError } from './errors.js';
import { excerpt } from './excerpt.js';

const MEMORY_SUFFIX: Readonly<Record<string, number>> = {
  '': 1,
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
  T: 1024 ** 4,
};

function isDigit(ch: string | undefined): boolean {
  return ch !== undefined && ch >= '0' && ch <= '9';
}

/** `digits[.digits]` at the start of `s`: the number and where it ends, or null. */
function leadingNumber(s: string): [number, number] | null {
  let i = 0;
  while (isDigit(s[i])) i++;
  if (s[i] === '.') {
    i++;
    while (isDigit(s[i])) i++;
  }
  const text = s.slice(0, i);
  if (text === '' || text === '.' || text.startsWith('.')) return null;
  return [Number(text), i];
}

function bad(key: string, value: string, expected: string, line: number): UnitError {
  return new UnitError('invalid-value', `${key}=${excerpt(value)}: expected ${expected}`, { line });
}

/**
 * `MemoryMax=`: bytes with an optional K, M, G or T suffix (base 1024), or `infinity` (0,
 * unlimited). Fractions round down to whole bytes: `1.5K` is 1536.
 */
export function parseMemoryBytes(key: string, value: string, line: number): number {
  const expected = 'bytes with an optional K, M, G or T suffix, or infinity';
  const v = value.trim();
  if (v === 'infinity') return 0;
  const num = leadingNumber(v);
  if (num === null) throw bad(key, value, expected, line);
  const factor = MEMORY_SUFFIX[v.slice(num[1]).trim()];
  if (factor === undefined) throw bad(key, value, expected, line);
  const bytes = Math.floor(num[0] * factor);
  if (!Number.isSafeInteger(bytes)) throw bad(key, value, `${expected} (this is too large)`, line);
  if (bytes === 0) throw bad(key, value, `more than 0 bytes (write infinity for no limit)`, line);
  return bytes;
}

/** `CPUQuota=NN%`: percent of one CPU, to millicores (25% is 250, 200% is 2000). */
export function parseCpuQuotaMillicores(key: string, value: string, line: number): number {
  const expected = 'a percentage of one CPU such as 25% or 200%';
  const v = value.trim();
  const num = leadingNumber(v);
  if (num === null || v.slice(num[1]) !== '%') throw bad(key, value, expected, line);
  const millicores = Math.round(num[0] * 10);
  if (!Number.isSafeInteger(millicores)) throw bad(key, value, expected, line);
  if (millicores === 0) throw bad(key, value, 'at least 0.1% (omit CPUQuota= for no limit)', line);
  return millicores;
}

/** `TasksMax=N` or `infinity` (0, unlimited). */
export function parseTasksMax(key: string, value: string, line: number): number {
  const expected = 'a number of tasks, or infinity';
  const v = value.trim();
  if (v === 'infinity') return 0;
  if (v === '' || ![...v].every(isDigit)) {
    const hint = v.endsWith('%') ? ' (percentages of the system limit are not supported)' : '';
    throw bad(key, value, expected + hint, line);
  }
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw bad(key, value, expected, line);
  if (n === 0) throw bad(key, value, 'at least 1 task (write infinity for no limit)', line);
  return n;
}

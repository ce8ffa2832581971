/**
 * Small value parsers shared by the section interpreters: systemd booleans, systemd time
 * spans (`systemd.time(7)`: `5` seconds, `5s`, `500ms`, `1min 30s`, `1h30m`, `2.5h`,
 * `infinity`; components add up), and "did you mean" hints for misspelt keys.
 */
import { UnitError } from './errors.js';
import { excerpt } from './excerpt.js';

const TRUE = new Set(['1', 'yes', 'y', 'true', 't', 'on']);
const FALSE = new Set(['0', 'no', 'n', 'false', 'f', 'off']);

/** systemd's booleans (`yes/no/true/false/on/off/1/0`, any case); undefined otherwise. */
export function parseBoolean(value: string): boolean | undefined {
  const v = value.trim().toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  return undefined;
}

/** A boolean key's value, or `UnitError('invalid-value')` naming the key and value. */
export function requireBoolean(key: string, value: string, line: number): boolean {
  const b = parseBoolean(value);
  if (b === undefined) {
    throw new UnitError(
      'invalid-value',
      `${key}=${excerpt(value)}: expected a boolean (yes/no, true/false, on/off, 1/0)`,
      { line },
    );
  }
  return b;
}

/**
 * The known name closest to `word` (case-insensitive equality, or an edit distance of at
 * most 2), for "did you mean" hints; undefined when nothing is close.
 */
export function closestName(word: string, known: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    if (k.toLowerCase() === lower) return k;
    if (Math.abs(k.length - word.length) >= bestDistance) continue;
    const d = editDistance(lower, k.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = k;
    }
  }
  return best;
}

/** Levenshtein distance; callers keep both strings short (length gap checked first). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min(sub, (prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** A "did you mean" suffix for an unknown key, or an empty string. */
export function didYouMean(word: string, known: readonly string[]): string {
  const near = closestName(word, known);
  return near === undefined ? '' : ` (did you mean "${near}"?)`;
}

/** Milliseconds per unit, longest spelling first where one is a prefix of another. */
const UNITS: readonly (readonly [string, number])[] = [
  ['usec', 0.001],
  ['us', 0.001],
  ['µs', 0.001],
  ['μs', 0.001],
  ['msec', 1],
  ['ms', 1],
  ['seconds', 1000],
  ['second', 1000],
  ['sec', 1000],
  ['s', 1000],
  ['minutes', 60_000],
  ['minute', 60_000],
  ['min', 60_000],
  ['months', 2_629_800_000],
  ['month', 2_629_800_000],
  ['M', 2_629_800_000],
  ['m', 60_000],
  ['hours', 3_600_000],
  ['hour', 3_600_000],
  ['hr', 3_600_000],
  ['h', 3_600_000],
  ['days', 86_400_000],
  ['day', 86_400_000],
  ['d', 86_400_000],
  ['weeks', 604_800_000],
  ['week', 604_800_000],
  ['w', 604_800_000],
  ['years', 31_557_600_000],
  ['year', 31_557_600_000],
  ['y', 31_557_600_000],
];

/** A word the unit must not run into: `5sx` is not `5s` followed by `x`. */
function isLetter(ch: string | undefined): boolean {
  return ch !== undefined && /^\p{L}$/u.test(ch);
}

function isDigit(ch: string | undefined): boolean {
  return ch !== undefined && ch >= '0' && ch <= '9';
}

/**
 * Parse a time span to milliseconds (rounded up, so a non-zero span stays non-zero);
 * `infinity` is `Infinity`. Returns undefined when `text` is not a time span.
 */
export function parseTimeSpanMs(text: string): number | undefined {
  const s = text.trim();
  if (s === 'infinity') return Infinity;
  if (s === '') return undefined;
  let i = 0;
  let total = 0;
  while (i < s.length) {
    while (s[i] === ' ' || s[i] === '\t') i++;
    if (i >= s.length) break;
    const numStart = i;
    while (isDigit(s[i])) i++;
    if (s[i] === '.') {
      i++;
      while (isDigit(s[i])) i++;
    }
    const num = s.slice(numStart, i);
    if (num === '' || num === '.') return undefined;
    while (s[i] === ' ' || s[i] === '\t') i++;
    let factor = 1000;
    for (const [unit, ms] of UNITS) {
      if (s.startsWith(unit, i) && !isLetter(s[i + unit.length])) {
        factor = ms;
        i += unit.length;
        break;
      }
    }
    if (isLetter(s[i])) return undefined;
    total += Number(num) * factor;
  }
  if (!Number.isFinite(total) || total > Number.MAX_SAFE_INTEGER) return undefined;
  return Math.ceil(total);
}

/** The message for a value that `parseTimeSpanMs` refused. */
export function timeSpanHint(key: string, value: string): string {
  return `${key}=${excerpt(value)}: expected a time span such as 90s, 500ms, 1min 30s or 2h`;
}

/**
 * Small value parsers and message helpers shared by the section interpreters.
 */
import { UnitError } from './errors.js';

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
      `${key}=${clipValue(value)}: expected a boolean (yes/no, true/false, on/off, 1/0)`,
      { line },
    );
  }
  return b;
}

/** Keep user input short in messages. */
export function clipValue(s: string, max = 60): string {
  return s.length <= max ? s : `${s.slice(0, max)}...`;
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

/**
 * systemd time spans (`systemd.time(7)`): `5` (seconds), `5s`, `500ms`, `1min 30s`,
 * `1h30m`, `2.5h`, `infinity`. Components add up; a number without a unit is seconds.
 */

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
  return `${key}=${value}: expected a time span such as 90s, 500ms, 1min 30s or 2h`;
}

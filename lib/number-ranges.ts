/**
 * Numbered instances as ranges: `web@7.service` .. `web@1000000.service` is one range, so a
 * template's pending instances are described in a record whose size does not grow with their
 * count (the leader writes it, the API and flotctl read it). Plain data, no imports: the
 * scheduler and flotctl both use it.
 */

/** first..last, both included. */
export interface NumberSpan {
  first: number;
  last: number;
}

/**
 * The number of a numbered instance (`web@12.service` -> 12): a positive decimal without
 * leading zeros that fits a proto int32. Undefined for other names (`web@canary.service`,
 * templates, plain units). Read in place, digit by digit: a wait's count reads every
 * instance's number twice a second, and a slice of each name would be garbage.
 */
export function instanceNumber(name: string): number | undefined {
  const at = name.indexOf('@');
  const dot = name.lastIndexOf('.');
  if (at <= 0 || dot <= at + 1 || dot - at - 1 > 10) return undefined;
  let n = 0;
  for (let i = at + 1; i < dot; i++) {
    const digit = name.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9 || (digit === 0 && i === at + 1)) return undefined;
    n = n * 10 + digit;
  }
  return n <= 0x7fffffff ? n : undefined;
}

/**
 * Builds sorted, merged spans from numbers given in ascending order (as a name-sorted walk
 * does not give them: sort first). Each number is added once with {@link addNumber}.
 */
export function addNumber(spans: NumberSpan[], n: number): void {
  const last = spans[spans.length - 1];
  if (last !== undefined && n <= last.last + 1) last.last = Math.max(last.last, n);
  else spans.push({ first: n, last: n });
}

/** Sorted, merged spans of `numbers`, given in any order. */
export function toSpans(numbers: readonly number[]): NumberSpan[] {
  const spans: NumberSpan[] = [];
  for (const n of [...numbers].sort((a, b) => a - b)) addNumber(spans, n);
  return spans;
}

/** Whether `n` is in `spans` (sorted and disjoint): a bisection, O(log spans). */
export function inSpans(spans: readonly NumberSpan[], n: number): boolean {
  let lo = 0;
  let hi = spans.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const s = spans[mid] as NumberSpan;
    if (n < s.first) hi = mid;
    else if (n > s.last) lo = mid + 1;
    else return true;
  }
  return false;
}

/** How many numbers `spans` hold. */
export function spanCount(spans: readonly NumberSpan[]): number {
  let n = 0;
  for (const s of spans) n += s.last - s.first + 1;
  return n;
}

/** Equal spans, in order. */
export function sameSpans(a: readonly NumberSpan[], b: readonly NumberSpan[]): boolean {
  return (
    a.length === b.length && a.every((s, i) => s.first === b[i]?.first && s.last === b[i]?.last)
  );
}

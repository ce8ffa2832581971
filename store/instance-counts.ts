/**
 * `instance-counts/<template>`: the numbered instances a scale made, as ONE record
 * (InstanceCount in counts.proto) instead of one `units/<instance>` record each. A scale to
 * 100,000 writes one record; every reader sees 100,000 units because the mirror expands it
 * (counted-units.ts), and a write to one instance takes that instance out of the count first
 * (materialise.ts). This file holds what the three share: the limits, the check a decoded
 * record must pass, and the arithmetic on sorted number ranges.
 */
import type { InstanceCount } from '../proto/flotilla/v1/counts.js';
import type { NumberRange } from '../proto/flotilla/v1/records.js';
import { toSpans } from '../lib/number-ranges.js';

/** Ranges one count record holds at most: about 30 KB of JSON. */
export const MAX_COUNT_RANGES = 1_000;

/** The highest number a count may hold (a scale's largest count). */
export const MAX_COUNTED_NUMBER = 1_000_000;

const DESIRED = new Set(['inactive', 'loaded', 'launched']);

/**
 * Why a decoded count record cannot be used (the mirror then skips it, reported as corrupt),
 * or undefined: its template must be the key's, its ranges sorted, disjoint, not adjacent,
 * within 1..{@link MAX_COUNTED_NUMBER} and at most {@link MAX_COUNT_RANGES}.
 */
export function instanceCountProblem(key: string, count: InstanceCount): string | undefined {
  const at = count.template.indexOf('@');
  if (at <= 0 || count.template[at + 1] !== '.' || !key.endsWith(`/${count.template}`)) {
    return `template ${JSON.stringify(count.template.slice(0, 80))} is not the key's template`;
  }
  if (count.file === '' || count.hash === '') return 'file or hash is empty';
  if (!DESIRED.has(count.desiredState)) {
    return `desired state ${JSON.stringify(count.desiredState.slice(0, 20))} is not inactive, loaded or launched`;
  }
  if (count.ranges.length > MAX_COUNT_RANGES) {
    return `${count.ranges.length} ranges, over the limit of ${MAX_COUNT_RANGES}`;
  }
  let after = 0;
  for (const r of count.ranges) {
    if (!Number.isInteger(r.first) || !Number.isInteger(r.last)) return 'a range is not integral';
    if (r.first <= after || r.last < r.first || r.last > MAX_COUNTED_NUMBER) {
      return `range ${r.first}..${r.last} is out of order or outside 1..${MAX_COUNTED_NUMBER}`;
    }
    after = r.last + 1; // the next range must leave a gap: ranges are merged
  }
  return undefined;
}

/** Instance `n` of a template (`web@.service`, 3 -> `web@3.service`). */
export function instanceOf(template: string, n: number): string {
  const at = template.indexOf('@');
  return `${template.slice(0, at + 1)}${n}${template.slice(at + 1)}`;
}

/** Every number of `ranges`, in order. */
export function* numbersOf(ranges: readonly NumberRange[]): Generator<number> {
  for (const r of ranges) for (let n = r.first; n <= r.last; n++) yield n;
}

/**
 * The numbers of `a` that are not in `b` (both sorted and disjoint), as ranges: O(|a| + |b|)
 * ranges, whatever the numbers they hold.
 */
export function subtractRanges(
  a: readonly NumberRange[],
  b: readonly NumberRange[],
): NumberRange[] {
  const out: NumberRange[] = [];
  let j = 0;
  for (const r of a) {
    let first = r.first;
    while (j < b.length && (b[j] as NumberRange).last < first) j++;
    let k = j;
    while (first <= r.last) {
      const cut = b[k];
      if (cut === undefined || cut.first > r.last) {
        out.push({ first, last: r.last });
        break;
      }
      if (cut.first > first) out.push({ first, last: cut.first - 1 });
      first = cut.last + 1;
      k++;
    }
  }
  return out;
}

/** `ranges` merged with `numbers` added (any order, duplicates allowed). */
export function addNumbers(
  ranges: readonly NumberRange[],
  numbers: readonly number[],
): NumberRange[] {
  return addRanges(ranges, toRanges(numbers));
}

/** The numbers of `a` or `b` (both sorted and disjoint), as merged ranges: O(|a| + |b|). */
export function addRanges(a: readonly NumberRange[], b: readonly NumberRange[]): NumberRange[] {
  const out: NumberRange[] = [];
  const push = (r: NumberRange): void => {
    const last = out[out.length - 1];
    if (last !== undefined && r.first <= last.last + 1) last.last = Math.max(last.last, r.last);
    else out.push({ first: r.first, last: r.last });
  };
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    if (y === undefined || (x !== undefined && x.first <= y.first)) {
      push(x as NumberRange);
      i++;
    } else {
      push(y);
      j++;
    }
  }
  return out;
}

/** `ranges` without `numbers` (any order; numbers not in them are ignored). */
export function removeNumbers(
  ranges: readonly NumberRange[],
  numbers: readonly number[],
): NumberRange[] {
  return subtractRanges(ranges, toRanges(numbers));
}

/** Sorted, merged ranges of `numbers`. */
export const toRanges: (numbers: readonly number[]) => NumberRange[] = toSpans;

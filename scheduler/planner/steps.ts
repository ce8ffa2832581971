/**
 * A pass as steps. The planner's phases are generators that yield at bounded checkpoints
 * inside their loops, so a driver outside the planner (lib/sliced.ts) can stop
 * between two checkpoints and let the event loop run. The planner itself never looks at a
 * clock: how many steps fit in a slice of time is the driver's call, and running the steps to
 * the end gives the same plan as a pass that never stopped.
 */

/** A phase of a pass: yields at checkpoints, returns its result. */
export type Steps<T> = Generator<void, T, undefined>;

/**
 * Checkpoint spacing in loops whose items cost a lookup or two (loading placements, compiling
 * units, turning the log into decisions): about 10-50 us of work between yields at 100,000
 * units. Loops whose items may scan every machine (placing, rechecking, explaining) yield
 * after each item instead.
 */
export const CHEAP_ITEMS = 256;

/** Runs `steps` to the end at once: the synchronous pass, for tests, benches and admission. */
export function runToEnd<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done === true) return r.value;
  }
}

/** Strings sorted per native sort in one step at most, before they are merged in steps. */
const SORT_RUN = 4_096;

/**
 * `names` sorted as `Array.prototype.sort` without a comparator sorts them (UTF-16 code
 * units, like compareNames), as steps: runs of {@link SORT_RUN} sorted natively, then merged
 * pairwise, a checkpoint every {@link CHEAP_ITEMS} names merged. Sorting 100,000 names at
 * once held a pass's slice for 50-100 ms. Returns a new array.
 */
export function* sortedSteps(names: readonly string[]): Steps<string[]> {
  let runs: string[][] = [];
  for (let i = 0; i < names.length; i += SORT_RUN) {
    runs.push(names.slice(i, i + SORT_RUN).sort());
    yield;
  }
  let n = 0;
  while (runs.length > 1) {
    const merged: string[][] = [];
    for (let r = 0; r < runs.length; r += 2) {
      const a = runs[r] as string[];
      const b = runs[r + 1];
      if (b === undefined) {
        merged.push(a);
        continue;
      }
      const out: string[] = [];
      let i = 0;
      let j = 0;
      while (i < a.length || j < b.length) {
        const x = a[i];
        const y = b[j];
        if (y === undefined || (x !== undefined && x <= y)) {
          out.push(x as string);
          i++;
        } else {
          out.push(y);
          j++;
        }
        if (++n % CHEAP_ITEMS === 0) yield;
      }
      merged.push(out);
    }
    runs = merged;
  }
  return runs[0] ?? [];
}

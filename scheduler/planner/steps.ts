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

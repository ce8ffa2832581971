/**
 * Runs steps (a generator that yields at bounded checkpoints, as the planner's phases do:
 * scheduler/planner/steps.ts) in slices of time on a thread that serves other work: steps
 * until the slice's budget is spent, then the event loop gets its turn (`setImmediate`:
 * pending I/O, the API's calls, timers, lease renewals), then the next slice. The steps stay
 * pure and clock-free; this driver owns the clock. The leader runs its passes so, and the API
 * its admission's look at what fits.
 *
 * A run stops at the next slice boundary once `stop` says so (the term ended, the engine
 * closed): the steps are abandoned, nothing they decided is written, and a successor plans
 * from its own view, never from a predecessor's half-done pass.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

/** Options of {@link runSliced}. */
export interface SliceOptions {
  /** Longest stretch of steps before the event loop gets a turn, ms. Default 20. */
  budgetMs?: number;
  /**
   * Asked before every slice after the first: an error to abandon the run with (it rejects
   * with it), or undefined to go on. Default: never stops.
   */
  stop?: () => Error | undefined;
}

/** What a sliced run returned and what it cost the event loop. */
export interface SlicedResult<T> {
  readonly value: T;
  /** Time spent running steps (the slices added up), ms: the thread's cost of the pass. */
  readonly busyMs: number;
  /** Slices: 1 when the steps fit one budget. */
  readonly slices: number;
  /** The longest slice, ms (one step past the budget at most). */
  readonly longestMs: number;
}

/** Default slice budget: the event loop waits at most about this long for a pass. */
export const DEFAULT_SLICE_MS = 20;

/** Runs `steps` to the end in slices of about `budgetMs`, yielding to the event loop between. */
export async function runSliced<T>(
  steps: Generator<void, T, undefined>,
  opts: SliceOptions = {},
): Promise<SlicedResult<T>> {
  const budget = opts.budgetMs ?? DEFAULT_SLICE_MS;
  let busyMs = 0;
  let slices = 0;
  let longestMs = 0;
  for (;;) {
    if (slices > 0) {
      await nextTurn();
      // Abandoned steps hold no resources: the generator is simply dropped.
      const stopped = opts.stop?.();
      if (stopped !== undefined) throw stopped;
    }
    slices += 1;
    const start = performance.now();
    const end = start + budget;
    let r = steps.next();
    while (r.done !== true && performance.now() < end) r = steps.next();
    const took = performance.now() - start;
    busyMs += took;
    if (took > longestMs) longestMs = took;
    if (r.done === true) return { value: r.value, busyMs, slices, longestMs };
  }
}

/**
 * The check of work that must end at a deadline (a `performance.now()` time) and may only
 * stop at certain points: call it after each item; it reads the clock every `every` calls,
 * and once the deadline has passed it stays true. A listing page, the watch cache's turn and
 * an event stream's turn each end so.
 */
export function pastDeadline(ends: number, every = 16): () => boolean {
  let calls = 0;
  let past = false;
  return () => {
    if (!past && ++calls % every === 0) past = performance.now() > ends;
    return past;
  };
}

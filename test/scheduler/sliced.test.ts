/**
 * A pass run in slices (lib/sliced.ts over planner/steps.ts): stopping between
 * any two checkpoints changes nothing in the plan, and the event loop gets its turns while a
 * big pass runs, so the API sharing the leader's thread is not kept waiting.
 */
import assert from 'node:assert/strict';
import test from 'ava';
import fc from 'fast-check';
import { plan, planSteps, type Snapshot } from '../../scheduler/planner/index.js';
import { runToEnd, sortedSteps } from '../../scheduler/planner/steps.js';
import { pastDeadline, runSliced } from '../../lib/sliced.js';
import { SchedulerError, isSchedulerError } from '../../scheduler/errors.js';
import { snapshotArb } from './planner-arbitraries.js';
import { machines, snapshot, unit } from './planner-fixtures.js';

/** `count` instances of a spread template with a reservation, on `n` machines in 5 zones. */
function bigCluster(n: number, count: number): Snapshot {
  const ms = machines(n, (i) => ({ meta: { zone: `z${i % 5}` } }));
  const units = Array.from({ length: count }, (_, i) =>
    unit(`web@${i + 1}.service`, { spreadBy: 'zone', maxPerMachine: 40, cpu: 100 }),
  );
  return snapshot(ms, units);
}

test.serial('a plan run in slices of a single step equals plan(), entry for entry', async (t) => {
  await fc.assert(
    fc.asyncProperty(snapshotArb, fc.integer({ min: 0, max: 3 }), async (snap, maxMoves) => {
      // Budget 0: every slice runs exactly one step, then the event loop turns.
      const sliced = await runSliced(planSteps(snap, { maxMoves }), { budgetMs: 0 });
      assert.deepEqual(sliced.value, plan(snap, { maxMoves }));
      assert.ok(sliced.slices > 1, `only ${sliced.slices} slice(s)`);
    }),
    { numRuns: 150 },
  );
  t.pass();
});

test.serial(
  'a big pass with placements already made plans the same in slices as at once',
  async (t) => {
    const snap = bigCluster(200, 6_000);
    const first = plan(snap);
    // Half of what the first pass placed is in place; the rest is planned again.
    const placements = new Map<string, readonly string[]>();
    first.place.forEach((d, i) => {
      if (i % 2 === 0) placements.set(d.unit, [d.machine]);
    });
    const half: Snapshot = { ...snap, placements };
    const sliced = await runSliced(planSteps(half, { maxMoves: 10 }), { budgetMs: 1 });
    t.deepEqual(sliced.value, plan(half, { maxMoves: 10 }));
    t.true(sliced.slices > 10, `${sliced.slices} slices`);
  },
);

test.serial(
  'with a 5 ms budget, a timer set when a 20,000-unit pass starts fires long before the pass ends',
  async (t) => {
    const snap = bigCluster(1_000, 20_000);
    const started = performance.now();
    const fired = new Promise<number>((resolve) =>
      setTimeout(() => resolve(performance.now() - started), 0),
    );
    const run = runSliced(planSteps(snap), { budgetMs: 5 });
    const [lateMs, result] = await Promise.all([fired, run]);
    const passMs = performance.now() - started;
    t.is(result.value.place.length, 20_000);
    // Generous: a loaded machine may delay a slice; the whole pass blocks for far longer.
    t.true(lateMs < 100, `the timer fired ${lateMs.toFixed(0)} ms after the pass began`);
    t.true(result.slices > 5, `${result.slices} slices over ${passMs.toFixed(0)} ms`);
    t.true(result.longestMs < 100, `the longest slice took ${result.longestMs.toFixed(0)} ms`);
  },
);

test.serial(
  'a sliced run stops at the next slice once asked, with the error it was given',
  async (t) => {
    const snap = bigCluster(500, 10_000);
    let slicesRun = 0;
    const err = await t.throwsAsync(
      runSliced(planSteps(snap), {
        budgetMs: 1,
        stop: () => {
          slicesRun += 1;
          return slicesRun >= 3 ? new SchedulerError('deposed', 'term ended') : undefined;
        },
      }),
    );
    t.true(isSchedulerError(err, 'deposed'));
    t.is(slicesRun, 3, 'asked before each slice after the first, and stopped at once');
  },
);

test('sortedSteps sorts as the native sort does, names of any order and size, in bounded steps', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.string({ unit: 'binary', maxLength: 8 }), { maxLength: 300 }),
      (names) => {
        assert.deepEqual(runToEnd(sortedSteps(names)), [...names].sort());
      },
    ),
  );
  // 100,000 instance names, in number order as admission lists them: at most about
  // CHEAP_ITEMS names merged, or one run of 4,096 sorted, between two checkpoints.
  const names = Array.from({ length: 100_000 }, (_, i) => `web@${i + 1}.service`);
  const steps = sortedSteps(names);
  let r = steps.next();
  let checkpoints = 0;
  while (r.done !== true) {
    checkpoints += 1;
    r = steps.next();
  }
  t.deepEqual(r.value, [...names].sort());
  t.true(checkpoints >= 100_000 / 256, `${checkpoints} checkpoints`);
});

test('pastDeadline reads the clock every so many calls, and once past stays past', (t) => {
  const past = pastDeadline(performance.now() - 1, 4);
  t.deepEqual([past(), past(), past(), past(), past()], [false, false, false, true, true]);
  const future = pastDeadline(performance.now() + 60_000, 1);
  t.false(future());
  t.false(future());
});

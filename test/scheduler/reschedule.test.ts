/**
 * The pacing of moves and the mass-loss pause, on a fake clock: pure decisions, no etcd.
 */
import test from 'ava';
import { LossGuard, MoveBudget } from '../../scheduler/leader/reschedule.js';

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

test('the move budget starts full, refills at its rate and never exceeds its burst', (t) => {
  const c = clock();
  const budget = new MoveBudget(2, 2, c.now);
  t.is(budget.available(), 2);
  budget.spend(2);
  t.is(budget.available(), 0);
  t.is(budget.msUntilNext(), 500);
  c.advance(499);
  t.is(budget.available(), 0);
  c.advance(1);
  t.is(budget.available(), 1);
  c.advance(60_000);
  t.is(budget.available(), 2, 'capped at the burst');
  budget.spend(10);
  t.is(budget.available(), 0, 'overspending empties it, no debt');
  c.advance(500);
  t.is(budget.available(), 1);
});

test('a rate of 0 means moves are unlimited', (t) => {
  const budget = new MoveBudget(0);
  t.true(budget.unlimited);
  budget.spend(1_000);
  t.is(budget.available(), Number.POSITIVE_INFINITY);
  t.is(budget.msUntilNext(), 0);
});

test('losing half of the machines does not pause; losing more than half does', (t) => {
  const c = clock();
  const guard = new LossGuard({ now: c.now });
  guard.machineLost('a');
  guard.machineLost('b');
  t.is(guard.evaluate(2), undefined, '2 of 4 lost is not more than half');
  t.is(guard.paused, undefined);
  guard.machineLost('c');
  const tr = guard.evaluate(1);
  t.is(tr?.type, 'paused');
  t.deepEqual(guard.paused?.lost, ['a', 'b', 'c']);
  t.is(guard.paused?.total, 4);
  t.regex(guard.paused?.reason ?? '', /3 of 4 machines/);
});

test('losses outside the window do not add up', (t) => {
  const c = clock();
  const guard = new LossGuard({ windowMs: 10_000, now: c.now });
  guard.machineLost('a');
  t.is(guard.evaluate(3), undefined);
  c.advance(11_000);
  guard.machineLost('b');
  guard.machineLost('c');
  t.is(guard.evaluate(2), undefined, '2 recent of 4 remaining is not more than half');
});

test('a pause ends when enough machines return, and their return is not a loss', (t) => {
  const c = clock();
  const guard = new LossGuard({ now: c.now });
  for (const id of ['a', 'b', 'c', 'd']) guard.machineLost(id);
  t.is(guard.evaluate(1)?.type, 'paused', '4 of 5 lost');
  guard.machineSeen('a');
  t.is(guard.evaluate(2), undefined, '3 of 5 still lost: still paused');
  t.deepEqual(guard.paused?.lost, ['b', 'c', 'd']);
  guard.machineSeen('b');
  t.deepEqual(guard.evaluate(3), { type: 'resumed', why: 'returned' }, '2 of 5 lost');
  t.is(guard.paused, undefined);
});

test('a pause ends by itself after its timeout, and the operator can end it early', (t) => {
  const c = clock();
  const guard = new LossGuard({ pauseTimeoutMs: 60_000, now: c.now });
  for (const id of ['a', 'b']) guard.machineLost(id);
  t.is(guard.evaluate(0)?.type, 'paused');
  t.is(guard.paused?.resumesAt, c.now() + 60_000);
  c.advance(59_000);
  t.is(guard.evaluate(0), undefined);
  c.advance(1_000);
  t.deepEqual(guard.evaluate(0), { type: 'resumed', why: 'timeout' });
  t.is(guard.evaluate(0), undefined, 'the losses that caused it are forgotten');

  for (const id of ['x', 'y']) guard.machineLost(id);
  t.is(guard.evaluate(0)?.type, 'paused');
  t.deepEqual(guard.resume(), { type: 'resumed', why: 'operator' });
  t.is(guard.evaluate(0), undefined);
  t.is(guard.resume(), undefined, 'nothing to resume');
});

test('a pause timeout of 0 never ends by itself', (t) => {
  const c = clock();
  const guard = new LossGuard({ pauseTimeoutMs: 0, now: c.now });
  guard.machineLost('a');
  t.is(guard.evaluate(0)?.type, 'paused');
  t.is(guard.paused?.resumesAt, undefined);
  c.advance(365 * 24 * 3_600_000);
  t.is(guard.evaluate(0), undefined);
  t.truthy(guard.paused);
});

test('moves wait for the settle time after every loss', (t) => {
  const c = clock();
  const guard = new LossGuard({ settleMs: 1_000, now: c.now });
  t.is(guard.settleRemaining(), 0);
  guard.machineLost('a');
  t.is(guard.settleRemaining(), 1_000);
  c.advance(600);
  guard.machineLost('b');
  t.is(guard.settleRemaining(), 1_000, 'a later loss restarts it');
  c.advance(1_000);
  t.is(guard.settleRemaining(), 0);
});

test('a new leader counts machines still holding placements as lost now, and pauses afresh', (t) => {
  const c = clock();
  const guard = new LossGuard({ windowMs: 30_000, now: c.now });
  for (const id of ['a', 'b', 'c']) guard.machineLost(id);
  c.advance(240_000); // the previous leader paused long ago, then died
  guard.machinesAbsent(['a', 'b', 'c']);
  const tr = guard.evaluate(1);
  t.is(tr?.type, 'paused');
  t.is(guard.paused?.since, c.now());
});

/**
 * raceRenewal (store/lease-renewal.ts) on its own, with attempts that answer, refuse or hang
 * as an etcd member would: a refused attempt is followed at once, a hanging one gets a
 * companion, and nothing runs past its bounds. The presence tests cover it against etcd.
 */
import test from 'ava';
import { raceRenewal } from '../../store/lease-renewal.js';
import { StoreError } from '../../store/errors.js';

const refused = () => Promise.reject(new StoreError('unavailable', 'connect ECONNREFUSED'));
const hangs = (ms: number) =>
  new Promise<never>((_, reject) =>
    setTimeout(() => reject(new StoreError('deadline', 'deadline exceeded')), ms),
  );
const OPTS = { deadlineMs: 1_300, hedgeAfterMs: 330, parallel: 3, maxAttempts: 9 };

test('refused attempts are followed at once by others until one answers', async (t) => {
  let calls = 0;
  const t0 = Date.now();
  const win = await raceRenewal(() => (++calls <= 3 ? refused() : Promise.resolve(4n)), OPTS);
  const ms = Date.now() - t0;
  t.is(win.value, 4n);
  t.is(win.failed, 3);
  t.true(ms < 300, `no retry pause, no hedge wait: ${ms} ms`);
});

test('an attempt held without an answer gets a companion, and the first answer wins', async (t) => {
  let calls = 0;
  const t0 = Date.now();
  const win = await raceRenewal(
    (left) => (++calls === 1 ? hangs(left) : Promise.resolve(4n)),
    OPTS,
  );
  const ms = Date.now() - t0;
  t.is(win.value, 4n);
  t.true(ms >= 300 && ms < 1_000, `answered by the companion after the hedge: ${ms} ms`);
});

test('when nothing answers it rejects by its deadline, within its attempt and parallel bounds', async (t) => {
  let calls = 0;
  let inFlight = 0;
  let most = 0;
  const t0 = Date.now();
  const err = await t.throwsAsync(
    raceRenewal((left) => {
      calls += 1;
      inFlight += 1;
      most = Math.max(most, inFlight);
      return hangs(left).finally(() => (inFlight -= 1));
    }, OPTS),
  );
  const ms = Date.now() - t0;
  t.is((err as StoreError).code, 'deadline');
  t.true(ms >= 1_250 && ms < 2_000, `rejected at the deadline: ${ms} ms`);
  t.true(calls <= OPTS.maxAttempts && most <= OPTS.parallel, `${calls} attempts, ${most} at once`);
});

test('when every attempt is refused it gives up after its attempts, well before the deadline', async (t) => {
  let calls = 0;
  const t0 = Date.now();
  const err = await t.throwsAsync(
    raceRenewal(() => (calls++, refused()), { ...OPTS, deadlineMs: 5_000 }),
  );
  t.is((err as StoreError).code, 'unavailable');
  t.is(calls, OPTS.maxAttempts);
  t.true(Date.now() - t0 < 1_500, 'bounded by attempts, not by the deadline');
});

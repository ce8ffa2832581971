/**
 * Admission (issue 26): a scale up, or a start of a template's instances, is compared with
 * what the cluster can hold now and with the template's ceiling before anything is written.
 * A real API server over a real etcd with three machines (zones a, b, c) and the example
 * api@.service (MaxPerMachine=2, so 6 fit); no leader runs, so nothing gets placed: what fits
 * is what the planner finds room for.
 */
import { readFileSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import test from 'ava';
import { codecs, type Store } from '../../store/index.js';
import { etcdForFile, EXAMPLES, makeMachine, unitText } from '../../testkit/index.js';
import { failure, fingerprint, startApi, unitNames, type Api } from './api-kit.js';

const API = readFileSync(`${EXAMPLES}api@.service`, 'utf8');
const PER_MACHINE = '0/3 machines: 3 already run 2 instances of api@.service (MaxPerMachine=2)';

const server = etcdForFile(test);

async function threeMachines(store: Store): Promise<void> {
  for (const zone of ['a', 'b', 'c']) {
    const m = makeMachine({ id: `m-${zone}`, metadata: { zone } });
    await store.putRecord(codecs.machine, store.keys.machine(m.id), m);
  }
}

/** An API over three machines with api@.service submitted. */
async function cluster(
  t: Parameters<typeof startApi>[0],
  opts: Parameters<typeof startApi>[2] = {},
): Promise<Api> {
  const api = await startApi(t, server(), opts);
  await threeMachines(api.store);
  await api.submit({ files: [{ name: 'api@.service', contents: API }] });
  return api;
}

const instanceCount = async (api: Api): Promise<number> =>
  (await unitNames(api.store)).filter((n) => /^api@\d+\.service$/.test(n)).length;

test('a scale past what fits is refused with "at most N of M" and the reasons, and writes nothing', async (t) => {
  const api = await cluster(t);
  const before = await fingerprint(api.store);
  const err = await failure(api.scale('api', 7));
  t.is(err.code, status.FAILED_PRECONDITION);
  t.is(
    err.details,
    `api@.service=7: at most 6 of 7 can be placed now (${PER_MACHINE}); pass --allow-pending to queue the rest`,
  );
  t.deepEqual(await fingerprint(api.store), before, 'nothing written, not even the scale record');

  const six = await api.scale('api', 6);
  t.is(six.started.length, 6);
  t.like(six.admission, { placeable: 6, count: 6, ceiling: 10_000, admitted: true });
  t.is(six.admission?.verdict, 'api@.service=6: all 6 can be placed now (ceiling 10000)');
  // The six are written but not placed (no leader): the seventh still does not fit.
  t.is((await failure(api.scale('api', 7))).code, status.FAILED_PRECONDITION);
});

test('a scale over the ceiling is refused with the numbers, allow_pending or not, and writes nothing', async (t) => {
  const api = await cluster(t, { maxInstances: 50 });
  const before = await fingerprint(api.store);
  const started = Date.now();
  for (const allowPending of [false, true]) {
    const err = await failure(api.scale('api', 1_000_000, { allowPending }));
    t.is(err.code, status.INVALID_ARGUMENT);
    t.is(
      err.details,
      `api@.service=1000000 is over its ceiling of 50 instances (the scheduler's --max-instances); at most 6 of 1000000 can be placed now (${PER_MACHINE}); scale to at most 50, or raise the schedulers' --max-instances (an operator's flag)`,
    );
  }
  t.true(Date.now() - started < 10_000, `refused twice in ${Date.now() - started} ms`);
  t.deepEqual(await fingerprint(api.store), before);
});

test('with allow_pending a scale past what fits is accepted up to the ceiling, and says how many wait', async (t) => {
  const api = await cluster(t, { maxInstances: 20 });
  const res = await api.scale('api', 20, { allowPending: true });
  t.is(res.instances.length, 20);
  t.is(await instanceCount(api), 20);
  t.like(res.admission, { placeable: 6, count: 20, ceiling: 20, admitted: true });
  t.is(
    res.admission?.verdict,
    `api@.service=20: at most 6 of 20 can be placed now (${PER_MACHINE}); the other 14 will wait (--allow-pending; ceiling 20)`,
  );
  const over = await failure(api.scale('api', 21, { allowPending: true }));
  t.is(over.code, status.INVALID_ARGUMENT);
  t.regex(over.details, /^api@\.service=21 is over its ceiling of 20 instances/);
  t.is(await instanceCount(api), 20);
});

test('a dry run answers the verdict and writes nothing; refused, it fails as the scale would', async (t) => {
  const api = await cluster(t);
  const before = await fingerprint(api.store);
  const yes = await api.scale('api', 6, { dryRun: true });
  t.deepEqual([yes.started, yes.instances], [[], []]);
  t.like(yes.admission, { admitted: true, placeable: 6, count: 6 });
  const queued = await api.scale('api', 9, { dryRun: true, allowPending: true });
  t.regex(queued.admission?.verdict ?? '', /at most 6 of 9 .*; the other 3 will wait/);
  const no = await failure(api.scale('api', 9, { dryRun: true }));
  t.is(no.code, status.FAILED_PRECONDITION);
  t.regex(no.details, /^api@\.service=9: at most 6 of 9 can be placed now/);
  t.deepEqual(await fingerprint(api.store), before);
});

test('MaxInstances= in the template lowers the ceiling below --max-instances, and never raises it', async (t) => {
  const api = await cluster(t, { maxInstances: 3 });
  const file = (n: number): string => unitText({ xfleet: { MaxInstances: String(n) } });
  await api.submit({
    files: [
      { name: 'low@.service', contents: file(2) },
      { name: 'high@.service', contents: file(100) },
    ],
  });
  const low = await failure(api.scale('low', 3));
  t.is(low.code, status.INVALID_ARGUMENT);
  t.regex(
    low.details,
    /^low@\.service=3 is over its ceiling of 2 instances \(MaxInstances=2 in low@\.service\); at least 2 of 3 can be placed now; scale to at most 2, or raise MaxInstances= in low@\.service \(up to 3, the scheduler's --max-instances\)$/,
  );
  const high = await failure(api.scale('high', 4));
  t.regex(high.details, /^high@\.service=4 is over its ceiling of 3 instances \(the scheduler's/);
  t.is((await api.scale('low', 2)).instances.length, 2);
  t.is((await api.scale('high', 3)).instances.length, 3);
});

test('a scale down or to the same count is always admitted, even past the ceiling and what fits', async (t) => {
  const api = await cluster(t);
  await api.scale('api', 10, { allowPending: true });
  // The same cluster through a replica whose ceiling is now 5.
  const strict = await startApi(t, server(), { store: api.store, maxInstances: 5 });
  const same = await strict.scale('api', 10);
  t.is(same.instances.length, 10);
  t.regex(same.admission?.verdict ?? '', /a scale to the same count is always admitted/);
  const down = await strict.scale('api', 8);
  t.is(down.destroyed.length, 2);
  t.regex(down.admission?.verdict ?? '', /a scale down \(from 10\) is always admitted/);
  t.is(await instanceCount(api), 8);
  const up = await failure(strict.scale('api', 9, { allowPending: true }));
  t.is(up.code, status.INVALID_ARGUMENT, 'a scale up past the ceiling is not');
});

test('starting instances past what fits is refused with the numbers; allow_pending queues them', async (t) => {
  const api = await cluster(t);
  const names = (from: number, to: number): string[] =>
    Array.from({ length: to - from + 1 }, (_, i) => `api@${from + i}.service`);
  const before = await fingerprint(api.store);
  const err = await failure(api.setDesired(names(1, 7), 'launched'));
  t.is(err.code, status.FAILED_PRECONDITION);
  t.is(
    err.details,
    `api@.service: at most 6 of the 7 instances this request starts can be placed now (${PER_MACHINE}); pass --allow-pending to queue the rest`,
  );
  t.deepEqual(await fingerprint(api.store), before);

  await api.setDesired(names(1, 7), 'launched', true);
  t.is(await instanceCount(api), 7);
  // Later requests count the instances already waiting (a start of 1,000 is 8 requests).
  const more = await failure(api.setDesired(['api@8.service'], 'launched'));
  t.regex(
    more.details,
    /^api@\.service: this request starts 1 instance and 7 already wait: at most 6 of those 8 can be placed now/,
  );
  const stop = await api.setDesired(names(1, 7), 'inactive');
  t.is(stop.changed.length, 7, 'stopping is never refused');
});

test('a start that names a follower before its peer is admitted: peers are placed first', async (t) => {
  const api = await cluster(t);
  await api.submit({
    files: [
      { name: 'db@.service', contents: unitText({ xfleet: { Conflicts: 'db@*.service' } }) },
      { name: 'side@.service', contents: unitText({ xfleet: { MachineOf: 'db@%i.service' } }) },
    ],
  });
  const res = await api.setDesired(
    ['side@1.service', 'side@2.service', 'db@1.service', 'db@2.service'],
    'launched',
  );
  t.is(res.changed.length, 4);
  const four = await failure(
    api.setDesired(['side@4.service', 'db@3.service', 'db@4.service'], 'launched'),
  );
  t.regex(four.details, /^db@\.service: this request starts 2 instances and 2 already wait/);
});

test('starting a plain unit that fits nowhere is not refused by admission (its reasons show in status)', async (t) => {
  const api = await cluster(t);
  const mars = unitText({ xfleet: { MachineMetadata: 'region=mars' } });
  const res = await api.submit({
    files: [{ name: 'mars.service', contents: mars }],
    desiredState: 'launched',
  });
  t.deepEqual(res.created, ['mars.service']);
});

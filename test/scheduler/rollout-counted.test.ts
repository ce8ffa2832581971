/**
 * The leader's rollout driver over counted instances (a scale's instances-counts record),
 * against a real etcd: each step rewrites its batch of instances, taking each out of the
 * count record in the same transaction; the instances not yet rolled stay counted.
 */
import test from 'ava';
import { pino } from 'pino';
import type { Rollout } from '../../proto/flotilla/v1/records.js';
import { RolloutDriver } from '../../scheduler/rollouts/driver.js';
import { ClusterMirror, codecs, countedIn, openStore, readFence } from '../../store/index.js';
import { etcdForFile, uniquePrefix } from '../../testkit/index.js';

const server = etcdForFile(test);

test('a rollout step over counted instances materialises its batch, on the new file, and leaves the rest counted', async (t) => {
  const store = openStore({ endpoints: server().endpoint, prefix: uniquePrefix('roll-counted') });
  const mirror = new ClusterMirror(store);
  t.teardown(async () => {
    await mirror.close();
    store.close();
  });
  const { keys } = store;
  const base = { name: 'web@.service', desiredState: 'inactive' };
  await store.putRecord(codecs.unit, keys.unit('web@.service'), {
    ...base,
    file: 'v2',
    hash: 'h2',
  });
  await store.putRecord(codecs['instance-count'], keys.instanceCount('web@.service'), {
    template: 'web@.service',
    file: 'v1',
    hash: 'h1',
    desiredState: 'launched',
    ranges: [{ first: 1, last: 5 }],
  });
  const rollout: Rollout = {
    unit: 'web@.service',
    fromHash: 'h1',
    fromFile: 'v1',
    toHash: 'h2',
    toFile: 'v2',
    parallelism: 2,
    delayMs: 0n,
    monitorMs: 1_000n,
    healthyDeadlineMs: 60_000n,
    failureAction: 'pause',
    order: 'stop-first',
    phase: 'running',
    rollback: false,
    batch: [],
    failed: [],
    message: 'started',
    startedAt: BigInt(Date.now()),
    updatedAt: BigInt(Date.now()),
    nextBatchAt: 0n,
    total: 5,
    cursor: '',
  };
  await store.putRecord(codecs.rollout, keys.rollout('web@.service'), rollout);
  await store.put(`${keys.election()}leader`, 'me');
  const fence = await readFence(store, `${keys.election()}leader`);
  if (fence === undefined) return t.fail('the fence key was written');
  await mirror.ready();
  await mirror.waitFor(await store.revision());

  const driver = new RolloutDriver(store, mirror, pino({ level: 'silent' }));
  await driver.pass({ fence, signal: new AbortController().signal });
  await mirror.waitFor(await store.revision());

  const rewritten = ['web@1.service', 'web@2.service'];
  for (const name of rewritten) {
    const own = await store.getRecord(codecs.unit, keys.unit(name));
    t.like(own?.value, { name, file: 'v2', hash: 'h2', desiredState: 'launched' });
  }
  const count = await store.getRecord(codecs['instance-count'], keys.instanceCount('web@.service'));
  t.deepEqual(count?.value.ranges, [{ first: 3, last: 5 }], 'one put of the count');
  t.is(count?.value.hash, 'h1');
  t.is(countedIn(mirror.units.get('web@4.service')), 'web@.service');
  t.is(mirror.units.get('web@4.service')?.value.hash, 'h1', 'not yet rolled');
  const record = await store.getRecord(codecs.rollout, keys.rollout('web@.service'));
  t.deepEqual(
    record?.value.batch.map((s) => s.unit),
    rewritten,
  );
});

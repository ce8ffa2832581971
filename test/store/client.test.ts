import test from 'ava';
import { codecs, isRetryable, openStore, StoreError } from '../../store/index.js';
import { etcdForFile, freePort, makeMachine, uniquePrefix } from '../../testkit/index.js';

const server = etcdForFile(test);

test('an unreachable etcd gives StoreError unavailable within the deadline, not a hang', async (t) => {
  const port = await freePort(); // nothing listens here
  const store = openStore({ endpoints: `http://127.0.0.1:${port}`, callTimeoutMs: 1_000 });
  t.teardown(() => store.close());
  for (const call of [() => store.get('/k'), () => store.put('/k', 'v'), () => store.list('/')]) {
    const started = Date.now();
    const err = await t.throwsAsync(call(), { instanceOf: StoreError });
    t.is(err?.code, 'unavailable');
    t.true(isRetryable(err));
    t.true(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
  }
});

test.serial('a frozen etcd gives a retryable StoreError within the deadline', async (t) => {
  const store = openStore({ endpoints: server().endpoint, callTimeoutMs: 1_000 });
  t.teardown(async () => {
    await server().kill('SIGCONT');
    store.close();
  });
  await store.put(`${uniquePrefix('frozen')}k`, 'v'); // connected before the freeze
  await server().kill('SIGSTOP');
  const started = Date.now();
  const err = await t.throwsAsync(store.get('/k'), { instanceOf: StoreError });
  t.true(isRetryable(err), `code ${err?.code}`);
  t.true(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
});

test('a listing larger than a page is complete and consistent at one revision', async (t) => {
  const prefix = uniquePrefix('list');
  const store = openStore({ endpoints: server().endpoint, prefix });
  t.teardown(() => store.close());
  for (let i = 0; i < 23; i++) await store.put(`${prefix}k${String(i).padStart(2, '0')}`, `${i}`);
  const last = await store.put(`${prefix}z`, 'last');
  await store.put('/elsewhere', 'not listed');
  const listing = await store.list(prefix, { pageSize: 5 });
  t.is(listing.items.length, 24);
  t.true(listing.revision >= last);
  t.deepEqual(
    listing.items.map((kv) => kv.key),
    [
      ...Array.from({ length: 23 }, (_, i) => `${prefix}k${String(i).padStart(2, '0')}`),
      `${prefix}z`,
    ],
  );
  const old = await store.list(prefix, { revision: last - 1n, pageSize: 5 });
  t.is(old.items.length, 23);
});

test('typed records are written and read back with revisions as bigint', async (t) => {
  const store = openStore({ endpoints: server().endpoint, prefix: uniquePrefix('records') });
  t.teardown(() => store.close());
  const machine = makeMachine({ id: 'm1' });
  const key = store.keys.machine(machine.id);
  const revision = await store.putRecord(codecs.machine, key, machine);
  const read = await store.getRecord(codecs.machine, key);
  t.deepEqual(read?.value, machine);
  t.is(read?.modRevision, revision);
  t.is(typeof read?.createRevision, 'bigint');
  t.is(await store.getRecord(codecs.machine, store.keys.machine('absent')), undefined);
  await store.put(store.keys.machine('bad'), '{oops');
  const err = await t.throwsAsync(store.getRecord(codecs.machine, store.keys.machine('bad')));
  t.is((err as StoreError).code, 'corrupt');
  t.true(await store.delete(key));
  t.false(await store.delete(key));
});

test('a closed store refuses calls with code closed', async (t) => {
  const store = openStore({ endpoints: server().endpoint });
  store.close();
  const err = await t.throwsAsync(store.get('/k'), { instanceOf: StoreError });
  t.is(err?.code, 'closed');
});

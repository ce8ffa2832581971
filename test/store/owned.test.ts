import test, { type ExecutionContext } from 'ava';
import {
  big,
  changedRecords,
  resolveStoreOptions,
  Store,
  writeOwned,
  type OwnedOp,
} from '../../store/index.js';
import { etcdForFile, uniquePrefix } from '../../testkit/index.js';

const server = etcdForFile(test);

function open(t: ExecutionContext, label: string): Store {
  const store = new Store(
    resolveStoreOptions({ endpoints: server().endpoint, prefix: uniquePrefix(label) }),
  );
  t.teardown(() => store.close());
  return store;
}

async function grant(store: Store): Promise<bigint> {
  const res = await store.call(undefined, (c) => c.leaseClient.leaseGrant({ TTL: 60 }));
  return big(res.ID);
}

/** Two writers (each with its lease) of one record, and the claim key of the first. */
async function setup(t: ExecutionContext, label: string) {
  const store = open(t, label);
  const [mine, theirs] = await Promise.all([grant(store), grant(store)]);
  return {
    store,
    mine,
    theirs,
    key: store.keys.state('m1', 'web.service'),
    claim: store.keys.placement('m1', 'web.service'),
  };
}

const put = (key: string, value: string, lease: bigint, claim?: string): OwnedOp =>
  claim === undefined
    ? { type: 'put', key, value, lease }
    : { type: 'put', key, value, lease, claim };

test('a writer overwrites and deletes a record only while it is under its own lease', async (t) => {
  const { store, mine, theirs, key } = await setup(t, 'owned-lease');
  t.deepEqual(
    (await writeOwned(store, [put(key, 'a', mine)])).applied,
    [false],
    'absent: not ours',
  );

  await store.put(key, 'mine', { lease: mine });
  const ours = await writeOwned(store, [put(key, 'a', mine)]);
  t.deepEqual(ours.applied, [true]);
  t.is((await store.get(key))?.modRevision, ours.revision, 'the revision is the put’s');

  await store.put(key, 'theirs', { lease: theirs });
  t.deepEqual((await writeOwned(store, [put(key, 'b', mine)])).applied, [false]);
  t.deepEqual((await writeOwned(store, [{ type: 'delete', key, lease: mine }])).applied, [false]);
  t.like(await store.get(key), { value: Buffer.from('theirs'), lease: theirs });
});

test('a put whose claim key exists takes the record over from another writer', async (t) => {
  const { store, mine, theirs, key, claim } = await setup(t, 'owned-claim');
  await store.put(key, 'theirs', { lease: theirs });
  t.deepEqual((await writeOwned(store, [put(key, 'mine', mine, claim)])).applied, [false]);
  t.like(await store.get(key), { lease: theirs }, 'no claim: theirs stays');

  await store.put(claim, 'placed');
  t.deepEqual((await writeOwned(store, [put(key, 'mine', mine, claim)])).applied, [true]);
  t.like(await store.get(key), { value: Buffer.from('mine'), lease: mine });
  const theirClaim = store.keys.placement('m2', 'web.service');
  t.deepEqual(
    (await writeOwned(store, [put(key, 'theirs', theirs, theirClaim)])).applied,
    [false],
    'the writer it was taken from, no longer placed, cannot take it back',
  );
});

test('one transaction applies each op by its own condition', async (t) => {
  const { store, mine, theirs } = await setup(t, 'owned-mixed');
  const [a, b, c] = ['a', 'b', 'c'].map((n) => store.keys.state('m1', `${n}.service`));
  if (a === undefined || b === undefined || c === undefined) throw new Error('unreachable');
  await store.put(a, 'x', { lease: mine });
  await store.put(b, 'x', { lease: theirs });
  const res = await writeOwned(store, [
    put(a, 'y', mine),
    put(b, 'y', mine),
    { type: 'delete', key: c, lease: mine },
  ]);
  t.deepEqual(res.applied, [true, false, false]);
  t.like(await store.get(a), { value: Buffer.from('y') });
  t.like(await store.get(b), { value: Buffer.from('x'), lease: theirs });
});

test('changedRecords names the records deleted or written by anyone since', async (t) => {
  const { store, mine } = await setup(t, 'owned-changed');
  const keys = ['a', 'b', 'c'].map((n) => store.keys.state('m1', `${n}.service`));
  const res = await writeOwned(
    store,
    keys.map((key) => put(key, 'v', mine)),
  );
  t.deepEqual(res.applied, [false, false, false], 'none exists yet, so none is ours');
  const expected = new Map<string, bigint>();
  for (const key of keys) expected.set(key, await store.put(key, 'v', { lease: mine }));
  t.deepEqual(await changedRecords(store, expected), [], 'nothing changed');

  const [a, b] = keys;
  if (a === undefined || b === undefined) throw new Error('unreachable');
  await store.delete(a);
  await store.put(b, 'other');
  t.deepEqual((await changedRecords(store, expected)).sort(), [a, b].sort());
});

test('changedRecords checks more records than one transaction may compare', async (t) => {
  const { store } = await setup(t, 'owned-many');
  const expected = new Map<string, bigint>();
  for (let i = 0; i < 300; i++) {
    const key = store.keys.state('m1', `u${i}.service`);
    expected.set(key, await store.put(key, 'v'));
  }
  const last = store.keys.state('m1', 'u299.service');
  await store.put(last, 'w');
  t.deepEqual(await changedRecords(store, expected), [last]);
});

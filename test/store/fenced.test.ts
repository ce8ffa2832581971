import test from 'ava';
import {
  atomicTxn,
  ConflictError,
  FencedError,
  fencedTxn,
  readFence,
  Store,
  StoreError,
  resolveStoreOptions,
  type EtcdClient,
  type Fence,
  type StoreOperation,
} from '../../store/index.js';
import type { Resent } from '../../store/resend.js';
import { etcdForFile, uniquePrefix } from '../../testkit/index.js';

const server = etcdForFile(test);

function open(label: string): Store {
  return new Store(
    resolveStoreOptions({ endpoints: server().endpoint, prefix: uniquePrefix(label) }),
  );
}

/** Becomes "leader": writes an election key and returns the fence for this term. */
async function elect(store: Store, name = 'leader'): Promise<Fence> {
  const key = `${store.keys.election()}${name}`;
  await store.put(key, 'me');
  const fence = await readFence(store, key);
  if (fence === undefined) throw new Error('election key vanished');
  return fence;
}

async function count(store: Store, prefix: string): Promise<number> {
  return (await store.list(prefix)).items.length;
}

test('a fenced write carrying a stale election revision is rejected and writes nothing', async (t) => {
  const store = open('stale');
  t.teardown(() => store.close());
  const stale = await elect(store);
  await store.delete(stale.key); // deposed: the term ends...
  const current = await elect(store); // ...and another term starts under the same key
  t.not(current.revision, stale.revision);

  const err = await t.throwsAsync(
    fencedTxn(store, stale, (b) => {
      b.put(store.keys.placement('m1', 'a.service'), 'x');
      b.putIfAbsent(store.keys.placement('m1', 'b.service'), 'y');
      b.delete(store.keys.unit('c.service'));
    }),
    { instanceOf: FencedError },
  );
  t.is(err?.code, 'fenced');
  t.is(err?.currentRevision, current.revision);
  t.is(await count(store, store.keys.dir('placement')), 0);

  const ok = await fencedTxn(store, current, (b) =>
    b.put(store.keys.placement('m1', 'a.service'), 'x'),
  );
  t.deepEqual(ok.applied, [true]);
  t.is(await count(store, store.keys.dir('placement')), 1);
});

test('a fenced write after the election key expired is rejected', async (t) => {
  const store = open('gone');
  t.teardown(() => store.close());
  const fence = await elect(store);
  await store.delete(fence.key);
  const err = await t.throwsAsync(
    fencedTxn(store, fence, (b) => b.put(store.keys.unit('a.service'), 'x')),
    { instanceOf: FencedError },
  );
  t.is(err?.currentRevision, 0n);
  t.is(await store.get(store.keys.unit('a.service')), undefined);
});

test('create-if-absent and delete-if-unchanged apply per op and report which applied', async (t) => {
  const store = open('cond');
  t.teardown(() => store.close());
  const fence = await elect(store);
  const taken = store.keys.placement('m1', 'taken.service');
  await store.put(taken, 'first');
  const victim = store.keys.placement('m1', 'victim.service');
  const victimRev = await store.put(victim, 'v');
  const moved = store.keys.placement('m1', 'moved.service');
  const movedRev = await store.put(moved, 'v1');
  await store.put(moved, 'v2'); // changed since the leader read it

  const result = await fencedTxn(store, fence, (b) => {
    b.putIfAbsent(taken, 'second');
    b.putIfAbsent(store.keys.placement('m1', 'new.service'), 'n');
    b.deleteIfModRevision(victim, victimRev);
    b.deleteIfModRevision(moved, movedRev);
  });
  t.deepEqual(result.applied, [false, true, true, false]);
  t.is((await store.get(taken))?.value.toString(), 'first');
  t.is((await store.get(store.keys.placement('m1', 'new.service')))?.value.toString(), 'n');
  t.is(await store.get(victim), undefined);
  t.is((await store.get(moved))?.value.toString(), 'v2');
});

test('a batch over 128 ops is split into several transactions, each applied atomically', async (t) => {
  const store = open('split');
  t.teardown(() => store.close());
  const fence = await elect(store);
  const result = await fencedTxn(store, fence, (b) => {
    for (let i = 0; i < 300; i++)
      b.putIfAbsent(store.keys.placement('m1', `u${i}.service`), `${i}`);
  });
  t.is(result.transactions, 3);
  t.true(result.applied.every(Boolean));
  const { items } = await store.list(store.keys.placementsOn('m1'));
  t.is(items.length, 300);
  t.is(new Set(items.map((kv) => kv.modRevision)).size, 3, 'one revision per transaction');
});

/** Deposes the leader (a real delete in etcd) right after the first transaction commits. */
class DeposedAfterFirstTxn extends Store {
  private txns = 0;
  constructor(
    base: Store,
    private readonly electionKey: string,
  ) {
    super(base.options);
  }
  override async callResending<T>(
    key: string | undefined,
    fn: (client: EtcdClient) => Promise<T>,
    op: StoreOperation,
    resend?: boolean,
  ): Promise<Resent<T>> {
    const result = await super.callResending(key, fn, op, resend);
    if (key === this.electionKey && ++this.txns === 1) await this.delete(this.electionKey);
    return result;
  }
}

test('every part of a split batch is fenced: a leader deposed mid-batch writes no further part', async (t) => {
  const base = open('midway');
  t.teardown(() => base.close());
  const fence = await elect(base);
  const store = new DeposedAfterFirstTxn(base, fence.key);
  t.teardown(() => store.close());
  const err = await t.throwsAsync(
    fencedTxn(store, fence, (b) => {
      for (let i = 0; i < 300; i++) b.put(base.keys.placement('m1', `u${i}.service`), `${i}`);
    }),
    { instanceOf: FencedError },
  );
  t.is(err?.committedOps, 128);
  t.is(await count(base, base.keys.placementsOn('m1')), 128);
});

test('an atomic write with a failed guard writes nothing and names the conflicting keys', async (t) => {
  const store = open('atomic');
  t.teardown(() => store.close());
  await store.put(store.keys.unit('b.service'), 'exists');
  const err = await t.throwsAsync(
    atomicTxn(store, (b) => {
      for (const name of ['a.service', 'b.service', 'c.service']) {
        b.putIfAbsent(store.keys.unit(name), name);
      }
    }),
    { instanceOf: ConflictError },
  );
  t.is(err?.code, 'conflict');
  t.deepEqual(
    err?.conflicts.map((c) => c.key),
    [store.keys.unit('b.service')],
  );
  t.is(await count(store, store.keys.dir('unit')), 1);

  const ok = await atomicTxn(store, (b) => {
    b.putIfAbsent(store.keys.unit('a.service'), 'a');
    b.putIfAbsent(store.keys.unit('c.service'), 'c');
  });
  t.deepEqual(ok.applied, [true, true]);
  t.is(await count(store, store.keys.dir('unit')), 3);

  const tooMany = await t.throwsAsync(
    atomicTxn(store, (b) => {
      for (let i = 0; i < 129; i++) b.put(store.keys.unit(`x${i}.service`), 'x');
    }),
    { instanceOf: StoreError },
  );
  t.is(tooMany?.code, 'invalid');
});

test('an atomic write under a stale fence is fenced', async (t) => {
  const store = open('atomic-fence');
  t.teardown(() => store.close());
  const fence = await elect(store);
  await store.delete(fence.key);
  await t.throwsAsync(
    atomicTxn(store, (b) => b.put(store.keys.unit('a.service'), 'a'), { fence }),
    { instanceOf: FencedError },
  );
  t.is(await store.get(store.keys.unit('a.service')), undefined);
});

test('a fenced write paced by keepUp waits before each later transaction for what it wrote so far', async (t) => {
  const store = open('keep-up');
  t.teardown(() => store.close());
  const fence = await elect(store);
  const calls: bigint[] = [];
  let waiting = 0;
  const started = performance.now();
  const res = await fencedTxn(
    store,
    fence,
    (b) => {
      for (let i = 0; i < 300; i++) b.put(store.keys.placement('m1', `u${i}.service`), 'x');
    },
    {
      inFlight: 1,
      keepUp: async (written) => {
        calls.push(written);
        waiting += 1;
        await new Promise((resolve) => setTimeout(resolve, 100));
        waiting -= 1;
      },
    },
  );
  t.is(res.transactions, 3, '300 ops: three transactions of at most 128');
  t.is(calls.length, 2, 'asked before the second and the third');
  const [first, second] = calls;
  t.true(
    first !== undefined && second !== undefined && first < second && second < res.revision,
    `each time with the revision written so far (${calls.join(', ')}, then ${res.revision})`,
  );
  t.is(waiting, 0);
  t.true(performance.now() - started >= 200, 'each transaction waited for its keepUp');
  t.is(await count(store, store.keys.dir('placement')), 300);
});

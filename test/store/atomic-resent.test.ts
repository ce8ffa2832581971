/**
 * How an all-or-nothing write sent twice (across an etcd leader change, store/resend.ts)
 * tells whether its first attempt applied: by what etcd holds now, against a real etcd.
 */
import test, { type ExecutionContext } from 'ava';
import { appliedAlready } from '../../store/atomic.js';
import { atomicTxn, Batch, openStore } from '../../store/index.js';
import { etcdForFile, uniquePrefix } from '../../testkit/index.js';

const server = etcdForFile(test);

function open(t: ExecutionContext, name: string) {
  const store = openStore({ endpoints: server().endpoint, prefix: uniquePrefix(name) });
  t.teardown(() => store.close());
  return store;
}

test('a write that applied is recognised as applied, at a revision the caller can wait for', async (t) => {
  const store = open(t, 'resent-applied');
  const { lease } = await store.grantLease(30);
  t.teardown(() => store.revokeLease(lease));
  await store.put(store.keys.unit('old.service'), 'old');
  const batch = new Batch()
    .putIfAbsent(store.keys.unit('a.service'), 'a')
    .put(store.keys.unit('b.service'), 'b', { lease })
    .delete(store.keys.unit('old.service'));
  const written = await atomicTxn(store, (b) => batch.ops.forEach((op) => b.add(op)));
  // The second attempt of this very write would now find its guard failed (a exists).
  const revision = await appliedAlready(store, batch.ops);
  t.not(revision, undefined, 'etcd holds exactly what the write wrote');
  t.true((revision ?? 0n) >= written.revision);
});

test('a write that did not apply is not taken for applied', async (t) => {
  const store = open(t, 'resent-not');
  const { lease } = await store.grantLease(30);
  t.teardown(() => store.revokeLease(lease));
  await store.put(store.keys.unit('a.service'), 'someone else');
  await store.put(store.keys.unit('b.service'), 'b');
  await store.put(store.keys.unit('gone.service'), 'still here');
  const cases: Array<[string, Batch]> = [
    ['another value', new Batch().putIfAbsent(store.keys.unit('a.service'), 'a')],
    ['the value without its lease', new Batch().put(store.keys.unit('b.service'), 'b', { lease })],
    ['a key it deletes still there', new Batch().delete(store.keys.unit('gone.service'))],
    ['a key it writes absent', new Batch().put(store.keys.unit('never.service'), 'n')],
    [
      'one op of several not applied',
      new Batch().put(store.keys.unit('b.service'), 'b').put(store.keys.unit('a.service'), 'a'),
    ],
  ];
  for (const [what, batch] of cases) {
    t.is(await appliedAlready(store, batch.ops), undefined, what);
  }
});

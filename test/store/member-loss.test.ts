/**
 * A store over a 3-member etcd while a member dies: a write sent at once (a put, an API's
 * all-or-nothing transaction, a leader's fenced one) completes within etcd's election timeout
 * plus 2 s, whether the member was a follower (the call fails over to a live one) or raft's
 * leader (the live member that held the write for the dead leader gets it again once a new
 * leader is elected, store/resend.ts). The chaos suite measures the same on a whole cluster
 * (test/chaos/etcd-member-write.test.ts).
 */
import test from 'ava';
import {
  atomicTxn,
  fencedTxn,
  isRetryable,
  openStore,
  stringCodec,
  WatchCache,
  type Store,
} from '../../store/index.js';
import { CLUSTER_ELECTION_TIMEOUT_MS, etcdClusterForFile } from '../../testkit/etcd-cluster.js';
import { uniquePrefix } from '../../testkit/index.js';

const etcd = etcdClusterForFile(test);
const BOUND_MS = CLUSTER_ELECTION_TIMEOUT_MS + 2_000;

/** Writes once through every member, so the kill finds a connection to each. */
async function warm(store: Store): Promise<void> {
  await Promise.all(
    Array.from({ length: 9 }, (_, i) => store.put(`${store.keys.prefix}w${i}`, 'x')),
  );
}

for (const role of ['leader', 'follower'] as const) {
  test.serial(
    `a put, an all-or-nothing and a fenced write sent as the raft ${role} dies complete within the election timeout + 2 s`,
    async (t) => {
      const store = openStore({ endpoints: etcd().endpoints, prefix: uniquePrefix(role) });
      t.teardown(() => store.close());
      const { lease } = await store.grantLease(60);
      const electionKey = `${store.keys.prefix}election/me`;
      const fence = {
        key: electionKey,
        revision: (await store.createUnderLease(electionKey, 'me', lease)) ?? 0n,
      };
      for (let round = 0; round < 2; round++) {
        await warm(store);
        const leader = await etcd().leader();
        const victim = role === 'leader' ? leader : (leader + 1 + round) % 3;
        await etcd().kill(victim);
        try {
          const t0 = Date.now();
          const [putMs, txnMs, fenced] = await Promise.all([
            store.put(store.keys.unit(`put-${round}.service`), 'p').then(() => Date.now() - t0),
            atomicTxn(store, (b) =>
              b.putIfAbsent(store.keys.unit(`txn-${round}.service`), 't'),
            ).then(() => Date.now() - t0),
            fencedTxn(store, fence, (b) =>
              b.putIfAbsent(store.keys.placement('m1', `f-${round}.service`), 'f'),
            ).then((res) => ({ ms: Date.now() - t0, applied: res.applied })),
          ]);
          t.log(
            `member ${victim} (${role}) killed: put ${putMs} ms, atomic write ${txnMs} ms, ` +
              `fenced write ${fenced.ms} ms`,
          );
          t.true(putMs <= BOUND_MS, `put took ${putMs} ms`);
          t.true(txnMs <= BOUND_MS, `atomic write took ${txnMs} ms`);
          t.true(fenced.ms <= BOUND_MS, `fenced write took ${fenced.ms} ms`);
          t.deepEqual(fenced.applied, [true], 'the fenced write says it applied');
        } finally {
          await etcd().restart(victim);
        }
      }
      const units = await store.list(store.keys.dir('unit'));
      t.deepEqual(
        units.items.map((kv) => kv.value.toString()),
        ['p', 'p', 't', 't'],
        'each write there once, with its value',
      );
      const placements = await store.list(store.keys.dir('placement'));
      t.is(placements.items.length, 2, 'each fenced write there');
    },
  );
}

test.serial(
  'a watch cache (what every mirror is) follows a write within the election timeout + 2 s of any member dying',
  async (t) => {
    const store = openStore({ endpoints: etcd().endpoints, prefix: uniquePrefix('follow') });
    const cache = new WatchCache(store, { prefix: store.keys.prefix, codec: stringCodec });
    t.teardown(async () => {
      await cache.close();
      store.close();
    });
    await cache.ready();
    // Every member dies once: whichever the cache's watch is on, one round breaks it.
    for (let victim = 0; victim < 3; victim++) {
      await warm(store);
      await etcd().kill(victim);
      try {
        const t0 = Date.now();
        let revision = 0n;
        while (revision === 0n) {
          revision = await store.put(`${store.keys.prefix}k${victim}`, 'v').catch((err) => {
            if (!isRetryable(err) || Date.now() - t0 > BOUND_MS) throw err;
            return 0n;
          });
        }
        await cache.waitFor(revision, 2 * BOUND_MS);
        const ms = Date.now() - t0;
        t.log(`member ${victim} killed: the cache had the write ${ms} ms later`);
        t.true(ms <= BOUND_MS, `the cache followed after ${ms} ms`);
      } finally {
        await etcd().restart(victim);
      }
    }
  },
);

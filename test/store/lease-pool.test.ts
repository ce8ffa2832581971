import test from 'ava';
import { LeasePool, openStore, type LeasePoolEvent, type Store } from '../../store/index.js';
import {
  assertEventually,
  etcdForFile,
  etcdMetric,
  sleep,
  uniquePrefix,
} from '../../testkit/index.js';

const server = etcdForFile(test);

function open(label: string): Store {
  return openStore({ endpoints: server().endpoint, prefix: uniquePrefix(label) });
}

test('a pool keeps many leases alive past their TTL over one stream', async (t) => {
  const store = open('pool-many');
  const pool = new LeasePool(store, { ttlSeconds: 2 });
  t.teardown(async () => {
    await pool.close({ revoke: true });
    store.close();
  });
  const leases = await Promise.all(Array.from({ length: 50 }, () => pool.grant()));
  await Promise.all(
    leases.map((lease, i) => store.put(store.keys.machine(`m${i}`), 'x', { lease })),
  );
  const grantedAt = Date.now();
  await sleep(3_500); // well past the TTL: only renewals keep the keys
  const { items } = await store.list(store.keys.dir('machine'));
  t.is(items.length, 50, 'every key outlived its TTL');
  for (const lease of leases) {
    t.true((pool.lastRenewedAt(lease) ?? 0) > grantedAt, `lease ${lease} was renewed`);
  }
});

test.serial(
  'a pool spread over several streams renews every lease, each stream open on etcd',
  async (t) => {
    // etcd answers one stream's renewals one at a time, each after applying the writes before
    // it: a process standing in for thousands of machines spreads them over many streams.
    const keepAlives = 'grpc_server_started_total{grpc_method="LeaseKeepAlive"';
    const streamsBefore = await etcdMetric(server(), keepAlives);
    const store = open('pool-streams');
    const pool = new LeasePool(store, { ttlSeconds: 2, streams: 4 });
    t.teardown(async () => {
      await pool.close({ revoke: true });
      store.close();
    });
    const leases = await Promise.all(Array.from({ length: 40 }, () => pool.grant()));
    await Promise.all(
      leases.map((lease, i) => store.put(store.keys.machine(`m${i}`), 'x', { lease })),
    );
    await sleep(3_500); // well past the TTL: only renewals keep the keys
    const { items } = await store.list(store.keys.dir('machine'));
    t.is(items.length, 40, 'every key outlived its TTL');
    t.is(
      (await etcdMetric(server(), keepAlives)) - streamsBefore,
      4,
      'one stream per lane, all in the one lease worker',
    );
    t.throws(() => new LeasePool(store, { streams: 0 }), { message: /whole number >= 1/ });
  },
);

test('a released lease expires with its keys; a revoked one takes them at once', async (t) => {
  const store = open('pool-release');
  const pool = new LeasePool(store, { ttlSeconds: 2 });
  t.teardown(async () => {
    await pool.close({ revoke: true });
    store.close();
  });
  const [kept, released, revoked] = await Promise.all([pool.grant(), pool.grant(), pool.grant()]);
  if (kept === undefined || released === undefined || revoked === undefined) throw new Error();
  await store.put(store.keys.machine('kept'), 'x', { lease: kept });
  await store.put(store.keys.machine('released'), 'x', { lease: released });
  await store.put(store.keys.machine('revoked'), 'x', { lease: revoked });

  await pool.revoke(revoked);
  t.is(await store.get(store.keys.machine('revoked')), undefined, 'revoked: gone at once');
  t.true(pool.release(released));
  t.is(pool.size, 1);
  await assertEventually(
    async () => (await store.get(store.keys.machine('released'))) === undefined,
    {
      message: 'the released lease expires',
      timeoutMs: 10_000,
    },
  );
  t.not(await store.get(store.keys.machine('kept')), undefined, 'the kept lease lives on');
});

test('a lease revoked behind the pool is reported lost and no longer renewed', async (t) => {
  const store = open('pool-lost');
  const pool = new LeasePool(store, { ttlSeconds: 3, renewIntervalMs: 200 });
  const events: LeasePoolEvent[] = [];
  pool.on((e) => events.push(e));
  t.teardown(async () => {
    await pool.close({ revoke: true });
    store.close();
  });
  const lease = await pool.grant();
  const other = open('pool-lost');
  t.teardown(() => other.close());
  const elsewhere = new LeasePool(other);
  await elsewhere.revoke(lease); // another client revokes it
  await elsewhere.close();
  const lost = await assertEventually(() => events.find((e) => e.type === 'lost') ?? false, {
    message: 'the pool reports the lease lost',
  });
  t.is(lost.type === 'lost' ? lost.lease : undefined, lease);
  t.is(pool.size, 0);
  t.is(pool.lastRenewedAt(lease), undefined);
});

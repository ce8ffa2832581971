import test, { type ExecutionContext } from 'ava';
import {
  atomicTxn,
  big,
  codecs,
  isRetryable,
  openStore,
  prefixRangeEnd,
  stringCodec,
  WatchCache,
  type CacheChange,
  type CacheEvent,
  type Store,
  type StoreError,
} from '../../store/index.js';
import {
  assertEventually,
  etcdForFile,
  etcdMetric,
  sleep,
  startProxy,
  TurnCounter,
  uniquePrefix,
} from '../../testkit/index.js';

// Every test here restarts etcd, compacts its history or counts its watchers: serial.

const server = etcdForFile(test);

/**
 * A cache of a fresh prefix that reads etcd through a proxy the test can cut, and a writer that
 * does not go through it (`seed` writes before the cache lists); all closed at the end.
 */
async function cacheBehindProxy(
  t: ExecutionContext,
  name: string,
  seed?: (writer: Store, prefix: string) => Promise<void>,
) {
  const prefix = uniquePrefix(name);
  const proxy = await startProxy(server().clientPort);
  const writer = openStore({ endpoints: server().endpoint });
  const store = openStore({ endpoints: proxy.endpoint, dialTimeoutMs: 500 });
  await seed?.(writer, prefix);
  const cache = new WatchCache(store, { prefix, codec: stringCodec });
  t.teardown(async () => {
    await cache.close();
    store.close();
    writer.close();
    await proxy.close();
  });
  return { prefix, proxy, writer, cache };
}

/** A change as etcd's own history reports it, for comparing with what the cache emitted. */
interface Seen {
  type: 'put' | 'delete';
  key: string;
  value: string | undefined;
  revision: bigint;
}

function asSeen(change: CacheChange<string>): Seen {
  return {
    type: change.type,
    key: change.key,
    value: change.type === 'put' ? change.value : undefined,
    revision: change.revision,
  };
}

/** etcd's authoritative history of `prefix` over [from, to], read with a watch of our own. */
async function history(store: Store, prefix: string, from: bigint, to: bigint): Promise<Seen[]> {
  const stream = await store.client.watchClient.watch();
  const start = Buffer.from(prefix);
  const seen: Seen[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      stream.on('error', reject);
      stream.on('data', (res) => {
        for (const ev of res.events) {
          seen.push({
            type: String(ev.type).toUpperCase() === 'DELETE' ? 'delete' : 'put',
            key: ev.kv.key.toString(),
            value: String(ev.type).toUpperCase() === 'DELETE' ? undefined : ev.kv.value.toString(),
            revision: big(ev.kv.mod_revision),
          });
        }
        if (res.created && from > to) resolve();
        if ((seen[seen.length - 1]?.revision ?? 0n) >= to) resolve();
      });
      stream.write({
        create_request: {
          key: start,
          range_end: prefixRangeEnd(start),
          start_revision: from.toString(),
        },
      });
    });
  } finally {
    stream.cancel();
  }
  return seen.filter((s) => s.revision <= to);
}

/** Writes until it succeeds (a retried write may land twice: etcd's history says so). */
async function write(store: Store, op: () => Promise<unknown>): Promise<void> {
  for (;;) {
    try {
      await op();
      return;
    } catch {
      await sleep(50);
    }
  }
}

function contentOf(cache: WatchCache<string>): Record<string, string> {
  return Object.fromEntries(cache.entries().map((e) => [e.key, e.value]));
}

async function etcdContent(store: Store, prefix: string): Promise<Record<string, string>> {
  const { items } = await store.list(prefix);
  return Object.fromEntries(items.map((kv) => [kv.key, kv.value.toString()]));
}

test.serial(
  'a list+watch consumer sees every change exactly once and in order across an etcd restart',
  async (t) => {
    const prefix = uniquePrefix('restart');
    const writer = openStore({ endpoints: server().endpoint, callTimeoutMs: 2_000 });
    const store = openStore({ endpoints: server().endpoint, dialTimeoutMs: 500 });
    await writer.put(`${prefix}seed`, 'seed');
    const cache = new WatchCache(store, { prefix, codec: stringCodec });
    t.teardown(async () => {
      await cache.close();
      store.close();
      writer.close();
    });
    const events: CacheEvent<string>[] = [];
    const errors: StoreError[] = [];
    cache.on((e) => events.push(e));
    cache.onError((e) => errors.push(e));
    await cache.ready();
    const listedAt = cache.revision;
    t.deepEqual(contentOf(cache), { [`${prefix}seed`]: 'seed' });

    let restarted: Promise<void> | undefined;
    for (let i = 0; i < 150; i++) {
      const key = `${prefix}k${i % 17}`;
      await write(writer, () => (i % 5 === 4 ? writer.delete(key) : writer.put(key, `v${i}`)));
      if (i === 50) restarted = server().restart();
      if (i === 50 || i === 100) await sleep(20);
    }
    await restarted;
    const last = await writer.put(`${prefix}last`, 'end');
    await cache.waitFor(last);

    const expected = await history(writer, prefix, listedAt + 1n, last);
    const changes = events.filter((e): e is CacheChange<string> => e.type !== 'resync');
    // The cut shows as etcd unavailable or (a call caught mid-restart) a deadline: retried.
    t.true(
      errors.length > 0 && errors.every(isRetryable),
      `the watch was really cut, and only by transient errors: ${errors.map((e) => e.code).join(', ')}`,
    );
    t.deepEqual(changes.map(asSeen), expected);
    t.true(changes.every((c) => !c.synthetic));
    t.deepEqual(
      events.filter((e) => e.type === 'resync').map((e) => e.type === 'resync' && e.initial),
      [true],
      'no re-list needed',
    );
    t.deepEqual(contentOf(cache), await etcdContent(writer, prefix));
  },
);

test.serial(
  'after a compaction while disconnected the consumer re-lists once and converges, without duplicates',
  async (t) => {
    const { prefix, proxy, writer, cache } = await cacheBehindProxy(t, 'compact', async (w, p) => {
      for (const k of ['a', 'b', 'c', 'd', 'e']) await w.put(`${p}${k}`, k);
    });
    const events: CacheEvent<string>[] = [];
    cache.on((e) => events.push(e));
    await cache.ready();
    const before = await writer.put(`${prefix}f`, 'f');
    await cache.waitFor(before);

    proxy.block('reset');
    await writer.put(`${prefix}b`, 'b2'); // changed
    await writer.delete(`${prefix}c`); // deleted
    await writer.delete(`${prefix}d`);
    await writer.put(`${prefix}d`, 'd'); // deleted and re-created with the same value
    await writer.put(`${prefix}g`, 'g'); // new
    await writer.put(`${prefix}g2`, 'tmp');
    await writer.delete(`${prefix}g2`); // came and went while away: never seen
    const compactedAt = await writer.put(`${prefix}b`, 'b3');
    await writer.compact(compactedAt);
    proxy.unblock();

    const resync = await assertEventually(() => {
      const found = events.find((e) => e.type === 'resync' && !e.initial);
      if (found === undefined || found.type !== 'resync') throw new Error('no resync yet');
      return found;
    });
    t.true(resync.revision >= compactedAt);
    t.deepEqual(
      resync.changes
        .map((c) => [c.type, c.key.slice(prefix.length), c.type === 'put' ? c.value : null])
        .sort(),
      [
        ['delete', 'c', null],
        ['put', 'b', 'b3'],
        ['put', 'd', 'd'],
        ['put', 'g', 'g'],
      ],
    );
    t.true(resync.changes.every((c) => c.synthetic));
    t.deepEqual(contentOf(cache), await etcdContent(writer, prefix));

    const after = await writer.put(`${prefix}h`, 'h');
    await cache.waitFor(after);
    const live = events.filter((e): e is CacheChange<string> => e.type !== 'resync');
    t.deepEqual(
      live.map((c) => [c.key.slice(prefix.length), c.revision]),
      [
        ['f', before],
        ['h', after],
      ],
    );
    t.is(events.filter((e) => e.type === 'resync').length, 2, 'one initial listing, one re-list');
  },
);

test.serial(
  'a corrupt value is reported and left out, and the cache keeps following',
  async (t) => {
    const prefix = uniquePrefix('corrupt');
    const store = openStore({ endpoints: server().endpoint, prefix });
    const cache = new WatchCache(store, { prefix: store.keys.dir('state'), codec: codecs.state });
    t.teardown(async () => {
      await cache.close();
      store.close();
    });
    const errors: StoreError[] = [];
    cache.onError((e) => errors.push(e));
    await cache.ready();
    await store.put(store.keys.state('m1', 'bad.service'), 'not json');
    const rev = await store.put(store.keys.state('m1', 'good.service'), '{"name":"good.service"}');
    await cache.waitFor(rev);
    t.deepEqual(
      cache.entries().map((e) => e.value.name),
      ['good.service'],
    );
    t.is(errors[0]?.code, 'corrupt');
    t.is(errors[0]?.key, store.keys.state('m1', 'bad.service'));
  },
);

test.serial('closed caches leave no watchers behind in etcd', async (t) => {
  const store = openStore({ endpoints: server().endpoint });
  t.teardown(() => store.close());
  // Earlier tests closed their caches too: etcd forgets their watchers shortly after.
  await assertEventually(async () => (await watcherCount()) === 0, {
    message: 'no watchers left by earlier tests',
  });
  const caches = Array.from(
    { length: 8 },
    (_, i) => new WatchCache(store, { prefix: uniquePrefix(`leak${i}`), codec: stringCodec }),
  );
  await Promise.all(caches.map((c) => c.ready()));
  await assertEventually(async () => (await watcherCount()) === 8, {
    message: 'etcd counts the watchers',
  });
  await Promise.all(caches.map((c) => c.close()));
  await assertEventually(async () => (await watcherCount()) === 0, {
    message: 'etcd drops every closed watcher',
  });
  t.pass();
});

test.serial('ready() of a cache closed before its first listing rejects with closed', async (t) => {
  const store = openStore({ endpoints: 'http://127.0.0.1:9', callTimeoutMs: 500 });
  t.teardown(() => store.close());
  const cache = new WatchCache(store, { prefix: '/x/', codec: stringCodec });
  await cache.close();
  const err = await t.throwsAsync(cache.ready());
  t.is((err as StoreError).code, 'closed');
});

/** etcd's own count of live watchers, from its metrics endpoint. */
function watcherCount(): Promise<number> {
  return etcdMetric(server(), 'etcd_debugging_mvcc_watcher_total ');
}

test.serial(
  'a watch catching up on thousands of changes applies them in slices of whole transactions',
  async (t) => {
    const { prefix, proxy, writer, cache } = await cacheBehindProxy(t, 'slices');
    await cache.ready();
    // Cut off while 40 transactions of 100 puts each are written: on its return the watch
    // resumes from where it was, and etcd sends the backlog in large responses.
    proxy.block('reset');
    let revision = 0n;
    for (let txn = 0; txn < 40; txn++) {
      const res = await atomicTxn(writer, (b) => {
        for (let i = 0; i < 100; i++) b.put(`${prefix}t${txn}/k${i}`, 'v');
      });
      revision = res.revision;
    }
    const seen: number[] = [];
    let applied = 0;
    cache.on((e) => {
      if (e.type !== 'resync') applied += 1;
    });
    cache.onRevision(() => seen.push(applied));
    proxy.unblock();
    await cache.waitFor(revision, 30_000);
    t.is(cache.size, 4_000, 'every change applied');
    t.log(`changes applied at each revision step: ${seen.join(', ')}`);
    t.deepEqual(
      seen.filter((n) => n % 100 !== 0),
      [],
      'each step ends on a whole transaction',
    );
    t.true(
      seen.every((n, i) => n - (seen[i - 1] ?? 0) <= 1_100),
      'no step applies much more than a slice',
    );
  },
);

test.serial(
  'a watch applies about a slice of changes per turn of the event loop, however many responses arrived at once',
  async (t) => {
    const prefix = uniquePrefix('turns');
    const writer = openStore({ endpoints: server().endpoint });
    const store = openStore({ endpoints: server().endpoint });
    const cache = new WatchCache(store, { prefix, codec: stringCodec });
    t.teardown(async () => {
      await cache.close();
      store.close();
      writer.close();
    });
    await cache.ready();
    const turns = new TurnCounter();
    const perTurn = new Map<number, number>();
    cache.on((e) => {
      if (e.type !== 'resync') perTurn.set(turns.turn, (perTurn.get(turns.turn) ?? 0) + 1);
    });
    // 40 transactions of 100 puts go out at once; this thread then stays busy while etcd
    // answers and the watch's responses pile up in the socket, to arrive in one go.
    const writes = Array.from({ length: 40 }, (_, txn) =>
      atomicTxn(writer, (b) => {
        for (let i = 0; i < 100; i++) b.put(`${prefix}t${txn}/k${i}`, 'v');
      }),
    );
    await writes[0]; // every request is on the wire: etcd applies the rest meanwhile
    const busyUntil = Date.now() + 300;
    while (Date.now() < busyUntil); // the watch's responses pile up in the socket
    const results = await Promise.all(writes);
    await cache.waitFor(results.reduce((max, r) => (r.revision > max ? r.revision : max), 0n));
    turns.stop();
    t.is(cache.size, 4_000, 'every change applied');
    const most = Math.max(...perTurn.values());
    t.log(`changes applied per turn: most ${most}, over ${perTurn.size} turns`);
    t.true(most <= 1_100, `${most} changes applied in one turn`);
  },
);

test.serial(
  'waiting on a cache whose watch is delivering changes does not make etcd read the whole prefix',
  async (t) => {
    // The check of etcd's progress answers reads every key under the prefix: during a big
    // scale, made for each answer while the watch was behind, it took most of etcd's CPU.
    const prefix = uniquePrefix('busy');
    const writer = openStore({ endpoints: server().endpoint });
    const elsewhere = openStore({ endpoints: server().endpoint, prefix: uniquePrefix('other') });
    const store = openStore({ endpoints: server().endpoint });
    const cache = new WatchCache(store, { prefix, codec: stringCodec });
    t.teardown(async () => {
      await cache.close();
      for (const s of [store, writer, elsewhere]) s.close();
    });
    await cache.ready();
    let checks = 0;
    store.onRequest((r) => (checks += r.op === 'txn' ? 1 : 0));
    // For 2 s: a change under the prefix every 10 ms, and one elsewhere after each, whose
    // revision a reader waits for (as the API waits for etcd's revision).
    const until = Date.now() + 2_000;
    const waits: Promise<void>[] = [];
    for (let i = 0; Date.now() < until; i++) {
      await writer.put(`${prefix}k${i % 50}`, `v${i}`);
      const revision = await elsewhere.put(elsewhere.keys.unit(`x${i % 50}.service`), '{}');
      waits.push(cache.waitFor(revision, 10_000));
      await sleep(10);
    }
    const duringWrites = checks;
    await Promise.all(waits);
    // Quiet now: one last revision from elsewhere is confirmed through the check.
    await cache.waitFor(await elsewhere.put(elsewhere.keys.unit('last.service'), '{}'), 10_000);
    t.log(`prefix checks: ${duringWrites} while changes came, ${checks} in all`);
    t.true(duringWrites <= 2, `${duringWrites} checks of the prefix while its watch delivered`);
    t.true(checks >= 1, 'a revision made elsewhere, with the prefix quiet, is confirmed');
  },
);

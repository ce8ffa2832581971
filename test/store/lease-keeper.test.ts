/**
 * Leases first: every lease is renewed by the store's lease worker, from its own event loop
 * and connection, so a process whose main thread is stuck in a long task (a planning pass, a
 * huge watch batch, a GC pause) keeps its machine, its presence keys and its leadership.
 * The main thread is blocked for real here (Atomics.wait), for twice the TTL, and the tests
 * run one at a time because of it.
 */
import test from 'ava';
import { pino } from 'pino';
import {
  LeasePool,
  openStore,
  Presence,
  type LeaseRenewal,
  type PresenceEvent,
  type Store,
} from '../../store/index.js';
import { Leadership } from '../../scheduler/leader/leadership.js';
import { assertEventually, etcdForFile, uniquePrefix } from '../../testkit/index.js';

const server = etcdForFile(test);

const silent = pino({ level: process.env['FLOTILLA_TEST_LOG'] ?? 'silent' }, pino.destination(2));

function open(label: string): Store {
  return openStore({ endpoints: server().endpoint, prefix: uniquePrefix(label) });
}

/** Blocks this thread, timers and all, for `ms`: the longest task a daemon could run. */
function blockMainThread(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

test.serial(
  'a presence and a pool keep their leases while the main thread is blocked for twice the TTL',
  async (t) => {
    const store = open('blocked');
    const presence = new Presence(store, {
      key: store.keys.machine('agent'),
      value: 'a',
      ttlSeconds: 2,
    });
    const pool = new LeasePool(store, { ttlSeconds: 2 });
    t.teardown(async () => {
      await presence.close();
      await pool.close({ revoke: true });
      store.close();
    });
    const events: PresenceEvent['type'][] = [];
    presence.on((e) => events.push(e.type));
    const lost: bigint[] = [];
    pool.on((e) => e.type === 'lost' && lost.push(e.lease));
    const renewals: LeaseRenewal[] = [];
    store.leases.onRenewal((r) => renewals.push(r));
    await presence.start();
    const leases = await Promise.all(Array.from({ length: 20 }, () => pool.grant()));
    await Promise.all(
      leases.map((lease, i) => store.put(store.keys.machine(`m${i}`), 'x', { lease })),
    );
    const before = presence.lastRenewedAt ?? 0;

    blockMainThread(4_000);

    const { items } = await store.list(store.keys.dir('machine'));
    t.is(items.length, 21, 'every key outlived a 4 s block of its holder with a 2 s TTL');
    t.is((await store.get(presence.key))?.lease, presence.leaseId, 'still the first lease');
    t.deepEqual(lost, [], 'no pool lease was lost');
    await assertEventually(() => events.includes('renewed'), { message: 'renewals are reported' });
    t.false(events.includes('lost'), `presence events: ${events.join(', ')}`);
    t.true((presence.lastRenewedAt ?? 0) > before + 1_000, 'renewed while the thread was blocked');
    // The worker's timers fired on time while this thread was blocked.
    const late = Math.max(...renewals.map((r) => r.lateMs));
    t.true(late < 1_000, `worst renewal lateness ${late} ms`);
  },
);

test.serial(
  'a leader whose main thread is blocked for twice the election TTL stays leader, and no one else is elected',
  async (t) => {
    const store = open('blocked-leader');
    const a = new Leadership(store, { name: 'a', ttlSeconds: 2, retryMs: 200 }, silent);
    const b = new Leadership(store, { name: 'b', ttlSeconds: 2, retryMs: 200 }, silent);
    t.teardown(async () => {
      await b.close();
      await a.close();
      store.close();
    });
    const changes: string[] = [];
    for (const l of [a, b]) l.on((e) => changes.push(`${l.name} ${e.type}`));
    a.start();
    const term = await assertEventually(() => a.term ?? false, { message: 'a leads' });
    b.start();
    await assertEventually(() => b.leader()?.name === 'a', { message: 'b sees a lead' });

    blockMainThread(4_000);
    // Let both candidates hear whatever happened meanwhile (a deleted key, a new leader).
    await new Promise((resolve) => setTimeout(resolve, 1_500));

    t.false(term.signal.aborted, 'the term did not end');
    t.is(a.term, term);
    t.is(b.term, undefined);
    t.deepEqual(changes, ['a elected'], 'one election, no leader change');
  },
);

/**
 * The leader's record of lost machines (scheduler/leader/lost-machines.ts) against a real
 * etcd and mirror, with a real election term as its fence: a vanished machine is recorded
 * with the units placed on it, bounded per record and in number even when 5,000 machines
 * vanish at once, forgotten after its retention or when it returns, and a deposed leader
 * writes nothing.
 */
import test, { type ExecutionContext } from 'ava';
import { pino } from 'pino';
import type { Placement } from '../../proto/flotilla/v1/records.js';
import { Leadership, type Term } from '../../scheduler/leader/leadership.js';
import {
  LOST_UNIT_NAMES,
  LostMachines,
  MAX_LOST_BYTES,
} from '../../scheduler/leader/lost-machines.js';
import { atomicTxn, ClusterMirror, codecs, isStoreError, type Store } from '../../store/index.js';
import { assertEventually, etcdForFile, makeMachine } from '../../testkit/index.js';
import { prefixFor, testStore } from './harness.js';

const server = etcdForFile(test);
const silent = pino({ level: 'silent' });

interface Kit {
  readonly store: Store;
  readonly mirror: ClusterMirror;
  readonly term: Term;
  readonly lost: LostMachines;
  /** The clock LostMachines reads; tests move it. */
  readonly clock: { now: number };
}

async function kit(
  t: ExecutionContext,
  opts: { retentionMs?: number; max?: number } = {},
): Promise<Kit> {
  const store = testStore(t, server(), prefixFor(t));
  const mirror = new ClusterMirror(store);
  t.teardown(() => mirror.close());
  await mirror.ready();
  const leadership = new Leadership(store, { name: 'lost-test', ttlSeconds: 20 }, silent);
  t.teardown(() => leadership.close());
  leadership.start();
  const term = await assertEventually(
    () => leadership.term ?? Promise.reject(new Error('not leading yet')),
    { timeoutMs: 30_000, message: 'the test replica leads' },
  );
  const clock = { now: Date.now() };
  const lost = new LostMachines(store, mirror, { ...opts, now: () => clock.now }, silent);
  t.teardown(lost.follow());
  lost.termBegins();
  return { store, mirror, term, lost, clock };
}

/** Writes machines (and placements on them), 100 to a transaction; resolves once mirrored. */
async function addMachines(
  k: Kit,
  ids: readonly string[],
  units: (id: string) => string[] = () => [],
) {
  let revision = 0n;
  for (let i = 0; i < ids.length; i += 100) {
    const res = await atomicTxn(k.store, (b) => {
      for (const id of ids.slice(i, i + 100)) {
        b.putRecord(
          codecs.machine,
          k.store.keys.machine(id),
          makeMachine({ id, metadata: { zone: 'z1' } }),
        );
      }
    });
    revision = res.revision;
  }
  for (const id of ids) {
    for (const unit of units(id)) {
      const p: Placement = {
        unit,
        machine: id,
        hash: 'h',
        epoch: 1n,
        desiredState: 'launched',
        ports: [],
      };
      revision = await k.store.putRecord(codecs.placement, k.store.keys.placement(id, unit), p);
    }
  }
  await k.mirror.waitFor(revision);
}

async function removeMachines(k: Kit): Promise<void> {
  await k.store.deletePrefix(k.store.keys.dir('machine'));
  await k.mirror.waitFor(await k.store.revision());
}

async function lostRecords(k: Kit) {
  const { items } = await k.store.list(k.store.keys.dir('lost-machine'));
  return items.map((kv) => ({
    bytes: kv.value.length,
    value: codecs['lost-machine'].decode(kv.key, kv.value),
  }));
}

test('a vanished machine is recorded with its last record and units, and forgotten when it returns', async (t) => {
  const k = await kit(t);
  const units = Array.from({ length: 25 }, (_, i) => `u${String(i).padStart(2, '0')}.service`);
  await addMachines(k, ['m1', 'm2'], (id) => (id === 'm1' ? units : []));
  await k.store.delete(k.store.keys.machine('m1'));
  await k.mirror.waitFor(await k.store.revision());
  await k.lost.step(k.term);
  const [only, ...rest] = await lostRecords(k);
  t.is(rest.length, 0);
  t.is(only?.value.machine?.id, 'm1');
  t.deepEqual(only?.value.machine?.metadata, { zone: 'z1' });
  t.is(only?.value.units, 25);
  t.deepEqual(only?.value.unitNames, units.slice(0, LOST_UNIT_NAMES));
  t.is(only?.value.lostUnixMs, BigInt(k.clock.now));

  await k.lost.step(k.term);
  t.is((await lostRecords(k)).length, 1, 'a step with nothing new writes nothing new');
  await addMachines(k, ['m1']);
  await k.lost.step(k.term);
  t.deepEqual(await lostRecords(k), [], 'the returned machine is no longer lost');
});

test('5,000 machines vanishing at once write at most the cap, each record small; retention forgets them', async (t) => {
  const k = await kit(t, { retentionMs: 60_000 });
  const ids = Array.from({ length: 5_000 }, (_, i) => `m${String(i).padStart(4, '0')}`);
  // A few units each, with long names: the records must stay small all the same.
  await addMachines(k, ids.slice(0, 50), (id) =>
    Array.from({ length: 20 }, (_, i) => `${'x'.repeat(200)}-${id}-${i}.service`),
  );
  await addMachines(k, ids.slice(50));
  await removeMachines(k);
  await k.lost.step(k.term);
  const records = await lostRecords(k);
  t.is(records.length, 1_000);
  t.true(
    records.every((r) => r.bytes <= MAX_LOST_BYTES),
    `largest ${Math.max(...records.map((r) => r.bytes))} bytes`,
  );
  t.true(records.every((r) => r.value.unitNames.length <= LOST_UNIT_NAMES));

  k.clock.now += 61_000;
  await k.lost.step(k.term);
  t.deepEqual(await lostRecords(k), [], 'every record is past the retention');
});

test('beyond the cap the oldest records go first', async (t) => {
  const k = await kit(t, { max: 2 });
  for (const id of ['a', 'b', 'c']) {
    await addMachines(k, [id]);
    await k.store.delete(k.store.keys.machine(id));
    await k.mirror.waitFor(await k.store.revision());
    await k.lost.step(k.term);
    k.clock.now += 1_000;
  }
  t.deepEqual(
    (await lostRecords(k)).map((r) => r.value.machine?.id),
    ['b', 'c'],
  );
});

test('a deposed leader writes no record', async (t) => {
  const k = await kit(t);
  await addMachines(k, ['m1']);
  await k.store.delete(k.term.fence.key); // deposes the term
  await k.store.delete(k.store.keys.machine('m1'));
  await k.mirror.waitFor(await k.store.revision());
  const err = await t.throwsAsync(k.lost.step(k.term));
  t.true(isStoreError(err, 'fenced'), String(err));
  t.deepEqual(await lostRecords(k), []);
});

/**
 * The leader's loop against a real etcd with simulated machines: units get placed, follow
 * their desired state, move off lost and drained machines, and get unscheduled reasons when
 * they fit nowhere. Every test watches placements/ from the start and checks that no unit is
 * ever on two machines.
 */
import test from 'ava';
import { codecs } from '../../store/index.js';
import { assertEventually, etcdForFile, sleep, startProxy } from '../../testkit/index.js';
import {
  eventuallyLeads,
  eventuallyPlaced,
  PlacementMonitor,
  placements,
  prefixFor,
  replicaOptions,
  setDesired,
  startMachine,
  startReplica,
  submit,
  testStore,
  unscheduledOf,
} from './harness.js';

const server = etcdForFile(test);

test.serial(
  'submitted units are placed once each, least-loaded first, under the leader epoch',
  async (t) => {
    const prefix = prefixFor(t);
    const store = testStore(t, server(), prefix);
    const monitor = await PlacementMonitor.start(t, store);
    const machines = await Promise.all([1, 2, 3].map(() => startMachine(t, store)));
    const names = [1, 2, 3, 4, 5, 6].map((i) => `app${i}.service`);
    for (const name of names) await submit(store, name);
    const scheduler = await startReplica(t, replicaOptions(server(), prefix));
    const epoch = await eventuallyLeads(scheduler);
    const all = await eventuallyPlaced(
      store,
      names,
      (p) => p.epoch === epoch && p.desiredState === 'launched',
    );
    const perMachine = new Map<string, number>();
    for (const name of names) {
      const p = all.get(name)?.[0];
      t.truthy(p);
      t.is(p?.hash, (await store.getRecord(codecs.unit, store.keys.unit(name)))?.value.hash);
      perMachine.set(p?.machine ?? '', (perMachine.get(p?.machine ?? '') ?? 0) + 1);
    }
    t.deepEqual(
      [...perMachine.keys()].sort(),
      machines.map((m) => m.id).sort(),
      'every machine got units',
    );
    t.deepEqual([...perMachine.values()], [2, 2, 2]);
    t.deepEqual(await monitor.check(), []);
  },
);

test.serial(
  'desired state changes update the placement in place; inactive and destroy remove it',
  async (t) => {
    const prefix = prefixFor(t);
    const store = testStore(t, server(), prefix);
    await startMachine(t, store);
    await startMachine(t, store);
    await submit(store, 'web.service');
    await submit(store, 'db.service', {}, 'loaded');
    const scheduler = await startReplica(t, replicaOptions(server(), prefix));
    await eventuallyLeads(scheduler);
    const before = await eventuallyPlaced(store, ['web.service', 'db.service']);
    t.is(before.get('db.service')?.[0]?.desiredState, 'loaded');
    const machine = before.get('web.service')?.[0]?.machine;

    await setDesired(store, 'web.service', 'loaded');
    await eventuallyPlaced(
      store,
      ['web.service'],
      (p) => p.desiredState === 'loaded' && p.machine === machine,
      'web.service stays put, loaded',
    );
    await setDesired(store, 'web.service', 'inactive');
    await assertEventually(async () => !(await placements(store)).has('web.service'), {
      timeoutMs: 30_000,
      message: 'inactive removes the placement',
    });
    await store.delete(store.keys.unit('db.service'));
    await assertEventually(async () => (await placements(store)).size === 0, {
      timeoutMs: 30_000,
      message: 'destroy removes the placement',
    });
  },
);

test.serial(
  'destroyed units are unplaced by a sweep, without planning, and the rest stay put',
  async (t) => {
    const prefix = prefixFor(t);
    const store = testStore(t, server(), prefix);
    const monitor = await PlacementMonitor.start(t, store);
    await Promise.all([1, 2, 3].map(() => startMachine(t, store)));
    const names = Array.from({ length: 30 }, (_, i) => `s${i}.service`);
    for (const name of names) await submit(store, name);
    const scheduler = await startReplica(t, replicaOptions(server(), prefix));
    await eventuallyLeads(scheduler);
    const before = await eventuallyPlaced(store, names);
    await sleep(1_000); // the passes after placing are over
    const sweeps = scheduler.status().sweeps;
    const [gone, kept] = [names.slice(0, 15), names.slice(15)];
    await store.client.kv.txn({
      compare: [],
      success: gone.map((n) => ({
        request_delete_range: { key: Buffer.from(store.keys.unit(n)) },
      })),
      failure: [],
    });
    await assertEventually(
      async () => {
        const now = await placements(store);
        return gone.every((n) => !now.has(n));
      },
      { timeoutMs: 30_000, message: 'the destroyed units are unplaced' },
    );
    t.true(scheduler.status().sweeps > sweeps, 'a sweep unplaced them');
    const after = await placements(store);
    for (const n of kept) t.deepEqual(after.get(n), before.get(n), `${n} stays where it was`);
    // Re-submitted at once after a destroy, a unit is placed again by a planning pass.
    await submit(store, 's0.service');
    await eventuallyPlaced(store, ['s0.service']);
    t.deepEqual(await monitor.check(), []);
  },
);

test.serial('a machine whose lease expires has its units placed elsewhere', async (t) => {
  const prefix = prefixFor(t);
  const store = testStore(t, server(), prefix);
  const monitor = await PlacementMonitor.start(t, store);
  const machines = await Promise.all([1, 2, 3].map(() => startMachine(t, store, {}, 1)));
  const names = [1, 2, 3, 4, 5, 6].map((i) => `svc${i}.service`);
  for (const name of names) await submit(store, name);
  const scheduler = await startReplica(t, replicaOptions(server(), prefix));
  await eventuallyLeads(scheduler);
  const before = await eventuallyPlaced(store, names);
  const victim = machines[0];
  if (victim === undefined) throw new Error('no machine');
  const onVictim = names.filter((n) => before.get(n)?.[0]?.machine === victim.id);
  t.true(onVictim.length > 0);
  await victim.kill();
  const after = await eventuallyPlaced(
    store,
    names,
    (p) => p.machine !== victim.id,
    'units leave the lost machine',
  );
  for (const n of names.filter((x) => !onVictim.includes(x))) {
    t.is(after.get(n)?.[0]?.machine, before.get(n)?.[0]?.machine, `${n} did not move`);
  }
  t.is(scheduler.status().paused, undefined);
  t.deepEqual(await monitor.check(), []);
});

test.serial(
  'an unplaceable unit gets unscheduled reasons, cleared once it is placed',
  async (t) => {
    const prefix = prefixFor(t);
    const store = testStore(t, server(), prefix);
    const m1 = await startMachine(t, store, { metadata: { region: 'eu' } });
    await startMachine(t, store, { metadata: { region: 'us' } });
    await submit(store, 'mars.service', { xfleet: { MachineMetadata: 'region=mars' } });
    const scheduler = await startReplica(t, replicaOptions(server(), prefix));
    await eventuallyLeads(scheduler);
    const record = await assertEventually(
      async () => {
        const u = await unscheduledOf(store, 'mars.service');
        if (u === undefined) throw new Error('no unscheduled record');
        return u;
      },
      { timeoutMs: 30_000, message: 'unscheduled record written' },
    );
    t.is(record.machines, 2);
    t.regex(record.summary, /^0\/2 machines: /);
    t.regex(record.summary, /region/);
    t.true(record.reasons.length > 0);
    t.is(record.epoch, scheduler.status().epoch ?? -1n);
    const written = await store.get(store.keys.unscheduled('mars.service'));
    await sleep(1_500); // a few passes (tick 500 ms) with nothing new to say
    const again = await store.get(store.keys.unscheduled('mars.service'));
    t.is(again?.modRevision, written?.modRevision, 'unchanged reasons are not rewritten');

    await store.putRecord(codecs['machine-metadata'], store.keys.machineMetadata(m1.id), {
      machine: m1.id,
      metadata: { region: 'mars' },
      drained: false,
    });
    await eventuallyPlaced(store, ['mars.service'], (p) => p.machine === m1.id, 'placed on mars');
    await assertEventually(async () => (await unscheduledOf(store, 'mars.service')) === undefined, {
      timeoutMs: 30_000,
      message: 'unscheduled record cleared',
    });
  },
);

test.serial(
  'a unit whose file does not parse is reported, and the others are still placed',
  async (t) => {
    const prefix = prefixFor(t);
    const store = testStore(t, server(), prefix);
    await startMachine(t, store);
    await store.putRecord(codecs.unit, store.keys.unit('broken.service'), {
      name: 'broken.service',
      file: '[X-Fleet]\nNoSuchKey=1\n',
      hash: 'x',
      desiredState: 'launched',
    });
    await submit(store, 'fine.service');
    const scheduler = await startReplica(t, replicaOptions(server(), prefix));
    await eventuallyLeads(scheduler);
    await eventuallyPlaced(store, ['fine.service']);
    const record = await assertEventually(
      async () => {
        const u = await unscheduledOf(store, 'broken.service');
        if (u === undefined) throw new Error('no unscheduled record');
        return u;
      },
      { timeoutMs: 30_000, message: 'broken unit reported' },
    );
    t.regex(record.summary, /does not parse/);
    t.false((await placements(store)).has('broken.service'));
  },
);

test.serial('a drained machine has its units moved elsewhere', async (t) => {
  const prefix = prefixFor(t);
  const store = testStore(t, server(), prefix);
  const monitor = await PlacementMonitor.start(t, store);
  const a = await startMachine(t, store);
  const names = ['d1.service', 'd2.service'];
  for (const name of names) await submit(store, name);
  const scheduler = await startReplica(t, replicaOptions(server(), prefix));
  await eventuallyLeads(scheduler);
  await eventuallyPlaced(store, names, (p) => p.machine === a.id);
  const b = await startMachine(t, store);
  await store.putRecord(codecs['machine-metadata'], store.keys.machineMetadata(a.id), {
    machine: a.id,
    metadata: {},
    drained: true,
  });
  await eventuallyPlaced(
    store,
    names,
    (p) => p.machine === b.id,
    'units move off the drained machine',
  );
  t.deepEqual(await monitor.check(), []);
});

test.serial(
  'hundreds of decisions are committed in transactions of at most 128 operations',
  async (t) => {
    const prefix = prefixFor(t);
    const store = testStore(t, server(), prefix);
    const monitor = await PlacementMonitor.start(t, store);
    await startMachine(t, store, { capacity: { cpuMillicores: 0n, memoryBytes: 0n } });
    const names = Array.from({ length: 300 }, (_, i) => `bulk${i}.service`);
    await Promise.all(names.map((name) => submit(store, name)));
    const scheduler = await startReplica(t, replicaOptions(server(), prefix));
    await eventuallyLeads(scheduler);
    await eventuallyPlaced(store, names);
    await monitor.caughtUp(); // the placements are in etcd: wait for the watch to deliver them
    const perRevision = new Map<bigint, number>();
    for (const w of monitor.writes)
      perRevision.set(w.revision, (perRevision.get(w.revision) ?? 0) + 1);
    t.true(perRevision.size >= 3, `${perRevision.size} transactions`);
    t.true(Math.max(...perRevision.values()) <= 128);
    t.deepEqual(await monitor.check(), []);
  },
);

test.serial(
  'after its watches were cut off and compacted away, the scheduler re-lists and catches up',
  async (t) => {
    const prefix = prefixFor(t);
    const store = testStore(t, server(), prefix);
    const proxy = await startProxy(server().clientPort);
    t.teardown(() => proxy.close());
    const a = await startMachine(t, store, {}, 5);
    const b = await startMachine(t, store, {}, 5);
    await submit(store, 'early.service');
    const scheduler = await startReplica(
      t,
      replicaOptions(server(), prefix, { endpoints: [proxy.endpoint], electionTtlSeconds: 5 }),
    );
    await eventuallyLeads(scheduler);
    await eventuallyPlaced(store, ['early.service']);

    proxy.block('reset');
    await submit(store, 'meanwhile.service');
    await store.putRecord(codecs['machine-metadata'], store.keys.machineMetadata(a.id), {
      machine: a.id,
      metadata: {},
      drained: true,
    });
    await store.compact(await store.revision());
    proxy.unblock();
    await eventuallyPlaced(
      store,
      ['early.service', 'meanwhile.service'],
      (p) => p.machine === b.id,
      'what changed while cut off is acted on',
    );
    t.is((await placements(store)).size, 2, 'nothing placed twice');
  },
);

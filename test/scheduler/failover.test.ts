/**
 * Scheduler replicas as real processes (`node dist/scheduler/main.js`), where signals
 * matter: SIGKILL of the leader lets the other replica take over and place, a frozen leader
 * that wakes up after its successor took over writes nothing, and SIGTERM resigns at once
 * and exits 0. Placements are watched from the start: no unit is ever on two machines.
 */
import test from 'ava';
import { connect } from 'node:net';
import { readLeader } from '../../scheduler/leader/leadership.js';
import { assertEventually, etcdForFile, freePort, sleep } from '../../testkit/index.js';
import {
  eventuallyPlaced,
  PlacementMonitor,
  prefixFor,
  spawnReplica,
  startMachine,
  submit,
  testStore,
  type ReplicaProcess,
} from './harness.js';
import type { Store } from '../../store/index.js';

const server = etcdForFile(test);

/** Waits until `replica` leads (as etcd says) and returns its epoch. */
async function leader(store: Store, replica: ReplicaProcess, timeoutMs = 30_000): Promise<bigint> {
  return assertEventually(
    async () => {
      const info = await readLeader(store);
      if (info?.name !== replica.name) {
        throw new Error(
          `leader is ${info?.name ?? 'nobody'}; ${replica.name} says:\n${replica.output().slice(-2_000)}`,
        );
      }
      return info.revision;
    },
    { timeoutMs, message: `${replica.name} leads` },
  );
}

test.serial('SIGKILL of the leader lets the other replica take over and place', async (t) => {
  const prefix = prefixFor(t);
  const store = testStore(t, server(), prefix);
  const monitor = await PlacementMonitor.start(t, store);
  await startMachine(t, store);
  await startMachine(t, store);
  const a = spawnReplica(t, server(), prefix, 'a');
  const epochA = await leader(store, a);
  const b = spawnReplica(t, server(), prefix, 'b');
  await submit(store, 'before.service');
  await eventuallyPlaced(store, ['before.service'], (p) => p.epoch === epochA);
  await sleep(500); // b is up and campaigning

  a.child.kill('SIGKILL');
  t.is(await a.exited, 'SIGKILL');
  await submit(store, 'after.service');
  const epochB = await leader(store, b);
  t.true(epochB > epochA);
  const all = await eventuallyPlaced(
    store,
    ['before.service', 'after.service'],
    () => true,
    'the successor places the new unit',
  );
  t.is(all.get('after.service')?.[0]?.epoch, epochB);
  t.is(all.get('before.service')?.[0]?.epoch, epochA, 'a placement of the old term stays put');
  t.deepEqual(await monitor.check(), []);
});

test.serial(
  'a frozen leader that wakes after its successor took over writes nothing',
  async (t) => {
    const prefix = prefixFor(t);
    const store = testStore(t, server(), prefix);
    const monitor = await PlacementMonitor.start(t, store);
    await startMachine(t, store, {}, 5);
    await startMachine(t, store, {}, 5);
    const a = spawnReplica(t, server(), prefix, 'a');
    const epochA = await leader(store, a);
    const b = spawnReplica(t, server(), prefix, 'b');
    await sleep(500);

    a.child.kill('SIGSTOP');
    t.teardown(() => a.child.kill('SIGCONT'));
    // Work the frozen leader will find waiting in its watch streams when it wakes up.
    const names = [1, 2, 3, 4].map((i) => `f${i}.service`);
    for (const name of names.slice(0, 2)) await submit(store, name);
    const epochB = await leader(store, b);
    await eventuallyPlaced(store, names.slice(0, 2), (p) => p.epoch === epochB);
    const fromB = monitor.writes.length;

    a.child.kill('SIGCONT');
    for (const name of names.slice(2)) await submit(store, name);
    await eventuallyPlaced(store, names, (p) => p.epoch === epochB);
    await sleep(2_000); // the old leader has had time to act on what it saw before freezing
    const late = monitor.writes.slice(fromB).filter((w) => w.epoch !== epochB);
    t.deepEqual(late, [], 'no write carries the old epoch after the successor took over');
    t.is(monitor.writes.filter((w) => w.epoch === epochA).length, 0);
    t.deepEqual(await monitor.check(), []);
    t.regex(a.output(), /no longer leader/);
  },
);

test.serial('SIGTERM resigns leadership at once and exits 0', async (t) => {
  const prefix = prefixFor(t);
  const store = testStore(t, server(), prefix);
  await startMachine(t, store);
  const a = spawnReplica(t, server(), prefix, 'a', ['--election-ttl=10s']);
  await leader(store, a);
  const b = spawnReplica(t, server(), prefix, 'b', ['--election-ttl=10s']);
  await sleep(500);
  const started = Date.now();
  a.child.kill('SIGTERM');
  t.is(await a.exited, 0);
  const epochB = await leader(store, b);
  const took = Date.now() - started;
  t.true(took < 5_000, `b led ${took} ms after SIGTERM, well before a's 10 s lease could expire`);
  t.regex(a.output(), /resigned/);
  await submit(store, 'x.service');
  await eventuallyPlaced(store, ['x.service'], (p) => p.epoch === epochB);
});

test.serial(
  'each replica serves the API on --listen and announces it in its election key',
  async (t) => {
    const prefix = prefixFor(t);
    const store = testStore(t, server(), prefix);
    const port = await freePort();
    const a = spawnReplica(t, server(), prefix, 'a', [`--listen=127.0.0.1:${port}`]);
    await leader(store, a);
    t.is((await readLeader(store))?.info['api'], `127.0.0.1:${port}`);
    await new Promise<void>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.end();
        resolve();
      });
      socket.on('error', reject);
    });
    a.child.kill('SIGTERM');
    t.is(await a.exited, 0);
  },
);

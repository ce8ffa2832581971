/**
 * Rescheduling against a real etcd with simulated machines: moves of a lost machine's units
 * are rate limited; when more than half of the machines vanish at once rescheduling pauses
 * (across a change of leader too) until they return or an operator ends the pause. Every
 * test watches placements/ from the start and checks that no unit is ever on two machines.
 */
import test from 'ava';
import { readLeader } from '../../scheduler/leader/leadership.js';
import { resumeRescheduling, schedulerStatus } from '../../scheduler/api/rescheduling.js';
import { assertEventually, etcdForFile, sleep } from '../../testkit/index.js';
import {
  eventuallyLeads,
  eventuallyPlaced,
  PlacementMonitor,
  placements,
  prefixFor,
  replicaOptions,
  startMachine,
  startReplica,
  submit,
  testStore,
} from './harness.js';

const server = etcdForFile(test);

test.serial('moves are rate limited: a lost machine empties at --reschedule-rate', async (t) => {
  const prefix = prefixFor(t);
  const store = testStore(t, server(), prefix);
  const monitor = await PlacementMonitor.start(t, store);
  const victim = await startMachine(t, store, {}, 1);
  const names = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => `r${i}.service`);
  for (const name of names) await submit(store, name);
  const scheduler = await startReplica(t, replicaOptions(server(), prefix, { rescheduleRate: 2 }));
  await eventuallyLeads(scheduler);
  await eventuallyPlaced(store, names, (p) => p.machine === victim.id);
  await startMachine(t, store);
  await startMachine(t, store);
  await sleep(1_000); // the budget refills to its burst of 2
  await victim.kill();
  await eventuallyPlaced(store, names, (p) => p.machine !== victim.id, 'all moved', 60_000);
  // The monitor's watch may deliver the last move a moment after the read above saw it.
  const movesSeen = () => monitor.writes.filter((w) => w.machine !== victim.id);
  await assertEventually(() => {
    if (movesSeen().length < names.length) throw new Error(`${movesSeen().length} moves seen`);
  });
  const moves = movesSeen();
  t.is(moves.length, names.length, 'each unit moved once');
  // 8 moves at 2/s with a burst of 2: the last ones come at least 3 s after the first ones.
  const spread = (moves[moves.length - 1]?.at ?? 0) - (moves[0]?.at ?? 0);
  t.true(spread >= 2_500, `moves spread over ${spread} ms`);
  const commits = new Set(moves.map((w) => w.revision)).size;
  t.true(commits >= 4, `moves were spread over ${commits} commits`);
  t.deepEqual(await monitor.check(), []);
});

test.serial(
  'more than half of the machines vanishing pauses rescheduling until they return',
  async (t) => {
    const prefix = prefixFor(t);
    const store = testStore(t, server(), prefix);
    const monitor = await PlacementMonitor.start(t, store);
    const machines = await Promise.all([1, 2, 3, 4].map(() => startMachine(t, store, {}, 1)));
    const names = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => `p${i}.service`);
    for (const name of names) await submit(store, name);
    const scheduler = await startReplica(t, replicaOptions(server(), prefix));
    await eventuallyLeads(scheduler);
    const before = await eventuallyPlaced(store, names);
    const [keep, ...lost] = machines;
    if (keep === undefined) throw new Error('no machine');
    await Promise.all(lost.map((m) => m.kill()));
    const pause = await assertEventually(
      () => {
        const p = scheduler.status().paused;
        if (p === undefined) throw new Error('not paused');
        return p;
      },
      { timeoutMs: 30_000, message: 'rescheduling pauses' },
    );
    t.deepEqual([...pause.lost].sort(), lost.map((m) => m.id).sort());
    t.is(pause.total, 4);
    const leader = await assertEventually(
      async () => {
        const info = await readLeader(store);
        const status = info?.status as { rescheduling?: { lost?: unknown } | null } | undefined;
        if (!status?.rescheduling) throw new Error('pause not published');
        return info;
      },
      { timeoutMs: 10_000, message: 'the pause is published in the election key' },
    );
    t.is(leader?.name, scheduler.name);
    await sleep(2_000);
    const during = await placements(store);
    for (const name of names) {
      t.deepEqual(during.get(name), before.get(name), `${name} stays put while paused`);
    }

    // Two machines return: 1 of 4 lost is no longer "more than half", so the rest moves.
    const [back1, back2, gone] = lost;
    if (back1 === undefined || back2 === undefined || gone === undefined)
      throw new Error('machines');
    await startMachine(t, store, { id: back1.id }, 1);
    await startMachine(t, store, { id: back2.id }, 1);
    await assertEventually(() => scheduler.status().paused === undefined, {
      timeoutMs: 30_000,
      message: 'rescheduling resumes',
    });
    await eventuallyPlaced(
      store,
      names,
      (p) => p.machine !== gone.id,
      'units leave the lost machine',
    );
    t.deepEqual(await monitor.check(), []);
  },
);

test.serial(
  'an operator ends a pause: ResumeRescheduling is confirmed and the lost units move',
  async (t) => {
    const prefix = prefixFor(t);
    const store = testStore(t, server(), prefix);
    const monitor = await PlacementMonitor.start(t, store);
    const noLeader = await t.throwsAsync(resumeRescheduling(store));
    t.regex(noLeader?.message ?? '', /no scheduler leads/);
    const machines = await Promise.all([1, 2, 3].map(() => startMachine(t, store, {}, 1)));
    const names = [1, 2, 3, 4, 5, 6].map((i) => `o${i}.service`);
    for (const name of names) await submit(store, name);
    const scheduler = await startReplica(
      t,
      replicaOptions(server(), prefix, { pauseTimeoutMs: 0 }),
    );
    await eventuallyLeads(scheduler);
    await eventuallyPlaced(store, names);
    const notPaused = await t.throwsAsync(resumeRescheduling(store));
    t.regex(notPaused?.message ?? '', /not paused/);
    t.is((await store.list(store.keys.dir('control'))).items.length, 0, 'a refusal writes nothing');

    const [keep, ...lost] = machines;
    if (keep === undefined) throw new Error('no machine');
    await Promise.all(lost.map((m) => m.kill()));
    const status = await assertEventually(
      async () => {
        const s = await schedulerStatus(store);
        if (s.pause === undefined) throw new Error('not paused');
        return s;
      },
      { timeoutMs: 30_000, message: 'the pause shows in the scheduler status' },
    );
    t.is(status.leader, scheduler.name);
    t.deepEqual(status.pause?.lost, lost.map((m) => m.id).sort());
    t.is(status.pause?.total, 3);
    t.is(status.pause?.resumesAtUnixMs, 0n, 'with no pause timeout it never ends by itself');

    const res = await resumeRescheduling(store);
    t.deepEqual(res.pause?.lost, status.pause?.lost);
    t.is((await schedulerStatus(store)).pause, undefined);
    await eventuallyPlaced(store, names, (p) => p.machine === keep.id, 'all on the machine left');
    await assertEventually(
      async () => (await store.list(store.keys.dir('control'))).items.length === 0,
      { message: 'the leader deletes the request once answered' },
    );
    t.deepEqual(await monitor.check(), []);
  },
);

test.serial('a successor elected during a mass loss keeps rescheduling paused', async (t) => {
  const prefix = prefixFor(t);
  const store = testStore(t, server(), prefix);
  const machines = await Promise.all([1, 2, 3, 4].map(() => startMachine(t, store, {}, 1)));
  const names = [1, 2, 3, 4].map((i) => `s${i}.service`);
  for (const name of names) await submit(store, name);
  const a = await startReplica(t, replicaOptions(server(), prefix, { lossSettleMs: 4_000 }));
  await eventuallyLeads(a);
  const b = await startReplica(t, replicaOptions(server(), prefix, { lossSettleMs: 4_000 }));
  const before = await eventuallyPlaced(store, names);
  await Promise.all(machines.slice(1).map((m) => m.kill()));
  await assertEventually(() => a.status().paused !== undefined, {
    timeoutMs: 30_000,
    message: 'the first leader pauses',
  });
  await a.close();
  await eventuallyLeads(b);
  const pause = await assertEventually(
    () => {
      const p = b.status().paused;
      if (p === undefined) throw new Error('not paused');
      return p;
    },
    { timeoutMs: 30_000, message: 'the successor pauses too' },
  );
  t.is(pause.lost.length, 3);
  await sleep(1_000);
  t.deepEqual(await placements(store), before, 'nothing moved');
});

/**
 * The leader and [X-Service] Port=, end to end on etcd: placements carry ports picked from
 * each machine's range as its record states it, distinct per machine, and a unit for which no
 * machine has a free port waits with the reason in its unscheduled record.
 */
import test from 'ava';
import { assertEventually, etcdForFile } from '../../testkit/index.js';
import {
  eventuallyLeads,
  eventuallyPlaced,
  prefixFor,
  replicaOptions,
  startMachine,
  startReplica,
  submit,
  testStore,
  unscheduledOf,
} from './harness.js';

const server = etcdForFile(test);

test.serial(
  "dynamic ports come from each machine's recorded range, and a unit with no free port waits saying so",
  async (t) => {
    const prefix = prefixFor(t);
    const store = testStore(t, server(), prefix);
    const range = { portRangeFirst: 30000, portRangeLast: 30001 };
    await Promise.all([1, 2].map(() => startMachine(t, store, range)));
    const file = '[Service]\nExecStart=/bin/sleep 1000\n\n[X-Service]\nPort=http\n';
    const names = [1, 2, 3, 4].map((i) => `api@${i}.service`);
    for (const name of names) await submit(store, name, file);
    const scheduler = await startReplica(t, replicaOptions(server(), prefix));
    await eventuallyLeads(scheduler);
    const all = await eventuallyPlaced(store, names, (p) => p.ports.length === 1);
    const held = new Map<string, number[]>();
    for (const name of names) {
      const p = all.get(name)?.[0];
      const port = p?.ports[0];
      t.like(port, { name: 'http', static: false });
      held.set(p?.machine ?? '', [...(held.get(p?.machine ?? '') ?? []), port?.number ?? 0]);
    }
    for (const ports of held.values()) t.deepEqual([...ports].sort(), [30000, 30001]);
    await submit(store, 'api@5.service', file);
    const pending = await assertEventually(
      async () => {
        const u = await unscheduledOf(store, 'api@.service');
        if (u === undefined) throw new Error('no unscheduled record yet');
        return u;
      },
      { timeoutMs: 30_000, message: 'api@5 waits with a reason' },
    );
    t.is(pending.summary, '0/2 machines: 2 have no free port in 30000-30001');
  },
);

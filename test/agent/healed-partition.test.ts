/**
 * Who owns a state record after a partition heals. One agent is cut off from etcd (TCP proxy,
 * dropping traffic like a link that is down) past its lease, its units move to a second agent
 * (placements written straight to etcd, as the leader would), then the link comes back. The
 * returning agent stops its copies and must leave the new machine's `unit-states/<machine>/<name>` records
 * alone; and the agent a unit is placed on puts its record back whenever someone else deletes
 * or overwrites it. Two in-process agents, process driver, one etcd.
 */
import test from 'ava';
import type { UnitState } from '../../proto/flotilla/v1/records.js';
import { codecs, WatchCache, type Store } from '../../store/index.js';
import {
  assertEventually,
  etcdForFile,
  sleep,
  startProxy,
  uniquePrefix,
} from '../../testkit/index.js';
import { isPidAlive } from './harness.js';
import {
  inProcessAgent,
  place,
  service,
  stateRecord,
  storeFor,
  unplace,
  waitRegistered,
  waitRunning,
  waitState,
} from './daemon-harness.js';

const server = etcdForFile(test);

const SLEEPER = service('ExecStart=/bin/sleep 3600');
const UNITS = ['web.service', 'api.service'] as const;

/** One write to unit-states/ as etcd's watch saw it, for assertions and failure messages. */
interface StateWrite {
  readonly type: 'put' | 'delete';
  readonly key: string;
  readonly revision: bigint;
  readonly lease: bigint;
  readonly state?: UnitState;
}

/** Every write under unit-states/ from now on, in order. */
async function recordStateWrites(store: Store): Promise<{
  writes: StateWrite[];
  close: () => Promise<void>;
}> {
  const dir = store.keys.dir('state');
  const cache = new WatchCache(store, { prefix: dir, codec: codecs.state });
  const writes: StateWrite[] = [];
  cache.on((event) => {
    const changes = event.type === 'resync' ? event.changes : [event];
    for (const c of changes) {
      const key = c.key.slice(dir.length);
      if (c.type === 'put') {
        writes.push({
          type: 'put',
          key,
          revision: c.revision,
          lease: c.entry.lease,
          state: c.value,
        });
      } else writes.push({ type: 'delete', key, revision: c.revision, lease: 0n });
    }
  });
  await cache.ready();
  return { writes, close: () => cache.close() };
}

function describeWrite(w: StateWrite): string {
  const s = w.state;
  const what = s === undefined ? '' : ` ${s.machine} ${s.activeState}/${s.subState} pid ${s.pid}`;
  return `@${w.revision} ${w.type} ${w.key}${what} lease ${w.lease.toString(16)}`;
}

async function machineLease(store: Store, id: string): Promise<bigint | undefined> {
  return (await store.get(store.keys.machine(id)))?.lease;
}

const isRunningOn =
  (machine: string) =>
  (s: UnitState): boolean =>
    s.machine === machine && s.activeState === 'active' && s.subState === 'running' && s.pid > 0;

/**
 * Holds back every call `store` makes for `key` until the returned function is called: here
 * the placement watch of an agent, which after a partition may catch up only after the lease
 * is granted again (its back-off grows to 2 s while etcd is away, the lease's retry is 1 s),
 * so that order, a race in the field, happens every time.
 */
function holdCalls(store: Store, key: string): () => void {
  let release = (): void => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const call = store.call.bind(store);
  store.call = async (k, fn) => {
    if (k === key) await gate;
    return call(k, fn);
  };
  return release;
}

test.serial(
  'after a healed partition the returning agent leaves the new machine’s state records alone',
  async (t) => {
    const prefix = uniquePrefix('healed');
    const store = storeFor(t, server(), prefix);
    const proxy = await startProxy(server().clientPort);
    t.teardown(() => proxy.close());
    const lost = await inProcessAgent(t, { endpoint: proxy.endpoint, prefix, driver: 'process' });
    const kept = await inProcessAgent(t, {
      endpoint: server().endpoint,
      prefix,
      driver: 'process',
    });
    await waitRegistered(store, lost.machineId);
    await waitRegistered(store, kept.machineId);
    const before = new Map<string, UnitState>();
    for (const name of UNITS) {
      await place(store, lost.machineId, name, SLEEPER);
      before.set(name, await waitState(store, name, isRunningOn(lost.machineId), 'runs on A'));
    }

    const releaseWatch = holdCalls(lost.store, store.keys.placementsOn(lost.machineId));
    t.teardown(releaseWatch);
    proxy.block('drop');
    const leaseA = await machineLease(store, lost.machineId);
    await assertEventually(async () => (await machineLease(store, lost.machineId)) === undefined, {
      message: "the cut-off machine's lease expires",
    });
    for (const name of UNITS) t.is(await stateRecord(store, name), undefined);
    // The leader's move: the old placement goes, then the new one is written.
    for (const name of UNITS) {
      await unplace(store, lost.machineId, name);
      await place(store, kept.machineId, name, SLEEPER);
    }
    const after = new Map<string, UnitState>();
    for (const name of UNITS) {
      after.set(name, await waitState(store, name, isRunningOn(kept.machineId), 'runs on B'));
    }
    const history = await recordStateWrites(store);
    t.teardown(() => history.close());

    proxy.unblock();
    await assertEventually(
      async () => ((await machineLease(store, lost.machineId)) ?? leaseA) !== leaseA,
      { message: 'A registers again under a new lease' },
    );
    await sleep(2_000); // A is back, and has not yet seen that its units moved
    releaseWatch();
    for (const name of UNITS) {
      const pid = before.get(name)?.pid ?? 0;
      await assertEventually(async () => !(await isPidAlive(pid)), {
        message: `A stops its copy of ${name}`,
      });
    }
    await sleep(2_000); // whatever A still had to write about the units is written by now

    const log = (): string => history.writes.map(describeWrite).join('\n');
    for (const round of ['once healed', 'a few seconds later']) {
      for (const name of UNITS) {
        t.like(
          await stateRecord(store, name),
          {
            machine: kept.machineId,
            activeState: 'active',
            subState: 'running',
            pid: after.get(name)?.pid ?? -1,
          },
          `${name} ${round}: B's record, active/running. Writes to unit-states/ since the move:\n${log()}`,
        );
      }
      if (round === 'once healed') await sleep(3_000);
    }
    const foreign = history.writes.filter(
      (w) => w.type === 'delete' || w.state?.machine !== kept.machineId,
    );
    t.deepEqual(foreign.map(describeWrite), [], 'nobody but B wrote or deleted their records');
    for (const name of UNITS) {
      t.true(await isPidAlive(after.get(name)?.pid ?? 0), `${name} runs on B throughout`);
    }
  },
);

test.serial(
  'the agent a unit is placed on puts its state back when someone else deletes or overwrites it',
  async (t) => {
    const prefix = uniquePrefix('reassert');
    const store = storeFor(t, server(), prefix);
    const agent = await inProcessAgent(t, {
      endpoint: server().endpoint,
      prefix,
      driver: 'process',
    });
    await waitRegistered(store, agent.machineId);
    const name = 'web.service';
    await place(store, agent.machineId, name, SLEEPER);
    const running = await waitRunning(store, name);
    const key = store.keys.state(agent.machineId, name);
    const lease = (await store.get(store.keys.machine(agent.machineId)))?.lease;

    await store.delete(key);
    const back = await waitState(store, name, isRunningOn(agent.machineId), 'written again');
    t.is(back.pid, running.pid, 'the same process, reported again');
    t.is((await store.get(key))?.lease, lease, 'under the agent’s lease');

    await store.putRecord(codecs.state, key, { ...running, machine: 'elsewhere', pid: 1 });
    const reclaimed = await waitState(store, name, isRunningOn(agent.machineId), 'reclaimed');
    t.is(reclaimed.pid, running.pid);
    t.is((await store.get(key))?.lease, lease);
  },
);

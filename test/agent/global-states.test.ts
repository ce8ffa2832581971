/**
 * States of a Global unit: every machine it is placed on reports its own copy under
 * `unit-states/<machine>/<name>/global` and its own lease, so copies never overwrite each other and a
 * machine that goes takes only its own copy's record with it. Two agents with different
 * machine ids on one etcd, placements written straight to etcd (no scheduler).
 */
import test, { type ExecutionContext } from 'ava';
import type { UnitState } from '../../proto/flotilla/v1/records.js';
import type { Store } from '../../store/index.js';
import { assertEventually, etcdForFile, uniquePrefix } from '../../testkit/index.js';
import { isPidAlive } from './harness.js';
import {
  copyRecord,
  inProcessAgent,
  place,
  serviceWithFleet,
  service,
  spawnAgent,
  stateRecord,
  storeFor,
  unplace,
  waitCopy,
  waitRegistered,
  waitRunning,
} from './daemon-harness.js';

const server = etcdForFile(test);

const UNIT = 'mon.service';
const MONITOR = serviceWithFleet(['Global=true'], 'ExecStart=/bin/sleep 3600');
const isRunning = (s: UnitState): boolean => s.activeState === 'active' && s.pid > 0;

/** Every key under unit-states/, relative to it. */
async function stateKeys(store: Store): Promise<string[]> {
  const dir = store.keys.dir('state');
  const { items } = await store.list(dir);
  return items.map((kv) => kv.key.slice(dir.length));
}

async function leaseOf(store: Store, key: string): Promise<bigint | undefined> {
  return (await store.get(key))?.lease;
}

/** Two in-process agents (process driver) on one fresh prefix, both registered. */
async function twoAgents(t: ExecutionContext, label: string) {
  const prefix = uniquePrefix(label);
  const store = storeFor(t, server(), prefix);
  const setup = { endpoint: server().endpoint, prefix, driver: 'process' as const };
  const [a, b] = await Promise.all([inProcessAgent(t, setup), inProcessAgent(t, setup)]);
  await waitRegistered(store, a.machineId);
  await waitRegistered(store, b.machineId);
  return { prefix, store, a, b };
}

test.serial(
  'each machine reports its copy of a Global unit under its own key and lease',
  async (t) => {
    const { store, a, b } = await twoAgents(t, 'global-own');
    await place(store, a.machineId, UNIT, MONITOR);
    await place(store, b.machineId, UNIT, MONITOR);
    const onA = await waitCopy(store, UNIT, a.machineId, isRunning, 'running');
    const onB = await waitCopy(store, UNIT, b.machineId, isRunning, 'running');
    t.is(onA.machine, a.machineId);
    t.is(onB.machine, b.machineId);
    t.not(onA.pid, onB.pid, 'two copies, two processes');
    t.deepEqual(
      await stateKeys(store),
      [`${a.machineId}/${UNIT}/global`, `${b.machineId}/${UNIT}/global`].sort(),
      'no record shared by the machines',
    );
    for (const m of [a, b]) {
      t.is(
        await leaseOf(store, store.keys.globalState(UNIT, m.machineId)),
        await leaseOf(store, store.keys.machine(m.machineId)),
        "a copy's record lives and dies with its machine",
      );
    }

    await a.close();
    await assertEventually(async () => (await copyRecord(store, UNIT, a.machineId)) === undefined, {
      message: "the closed agent's copy record goes",
    });
    t.like(await copyRecord(store, UNIT, b.machineId), {
      machine: b.machineId,
      pid: onB.pid,
      activeState: 'active',
    });
    t.deepEqual(await stateKeys(store), [`${b.machineId}/${UNIT}/global`]);
    t.true(await isPidAlive(onB.pid), 'the other copy runs on');
  },
);

test.serial("a killed agent's lease takes only its own copy's record", async (t) => {
  const prefix = uniquePrefix('global-kill');
  const store = storeFor(t, server(), prefix);
  const setup = { endpoint: server().endpoint, prefix, driver: 'process' as const };
  const stays = await inProcessAgent(t, setup);
  const dies = await spawnAgent(t, setup);
  await waitRegistered(store, stays.machineId);
  await waitRegistered(store, dies.machineId);
  await place(store, stays.machineId, UNIT, MONITOR);
  await place(store, dies.machineId, UNIT, MONITOR);
  const kept = await waitCopy(store, UNIT, stays.machineId, isRunning, 'running');
  await waitCopy(store, UNIT, dies.machineId, isRunning, 'running');

  await dies.kill('SIGKILL');
  await assertEventually(
    async () => (await copyRecord(store, UNIT, dies.machineId)) === undefined,
    { timeoutMs: 15_000, message: 'the lease (3 s TTL) expires with its copy record' },
  );
  t.like(await copyRecord(store, UNIT, stays.machineId), {
    machine: stays.machineId,
    pid: kept.pid,
    activeState: 'active',
  });
  t.is(await stateRecord(store, UNIT), undefined);
});

test.serial("unplacing one copy stops it and deletes that copy's record only", async (t) => {
  const { store, a, b } = await twoAgents(t, 'global-unplace');
  await place(store, a.machineId, UNIT, MONITOR);
  await place(store, b.machineId, UNIT, MONITOR);
  const onA = await waitCopy(store, UNIT, a.machineId, isRunning, 'running');
  const onB = await waitCopy(store, UNIT, b.machineId, isRunning, 'running');

  await unplace(store, a.machineId, UNIT);
  await assertEventually(async () => (await copyRecord(store, UNIT, a.machineId)) === undefined, {
    message: "the unplaced copy's record is deleted",
  });
  t.false(await isPidAlive(onA.pid), 'the unplaced copy stopped');
  t.like(await copyRecord(store, UNIT, b.machineId), { pid: onB.pid, activeState: 'active' });
  t.deepEqual(await stateKeys(store), [`${b.machineId}/${UNIT}/global`]);
});

test.serial(
  "a unit whose file becomes Global moves its record to the machine's own key",
  async (t) => {
    const { store, a } = await twoAgents(t, 'global-move');
    await place(store, a.machineId, UNIT, service('ExecStart=/bin/sleep 3600'));
    const plain = await waitRunning(store, UNIT);
    t.is(plain.machine, a.machineId);

    await place(store, a.machineId, UNIT, MONITOR);
    const copy = await waitCopy(
      store,
      UNIT,
      a.machineId,
      (s) => isRunning(s) && s.pid !== plain.pid,
      'restarted as a Global copy',
    );
    t.is(copy.machine, a.machineId);
    await assertEventually(async () => (await stateRecord(store, UNIT)) === undefined, {
      message: 'the record of the unit that was not Global is deleted',
    });
    t.deepEqual(await stateKeys(store), [`${a.machineId}/${UNIT}/global`]);
  },
);

/**
 * The agent daemon as a real process (`node dist/agent/main.js`), where killing and restarting
 * it matters: adoption after SIGKILL with unchanged pids, an etcd restart that stops nothing,
 * a partition (TCP proxy) during which units keep running and after which units placed
 * elsewhere meanwhile stop, StopOnDisconnect=, SIGTERM with and without
 * --keep-units-on-exit, and two agents side by side on one host. Each test runs with every
 * driver this host supports.
 */
import test from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { signalPid } from '../../agent/runtime/proc.js';
import type { Store } from '../../store/index.js';
import {
  assertEventually,
  sleep,
  etcdForFile,
  startProxy,
  uniquePrefix,
} from '../../testkit/index.js';
import { DRIVERS, killUnits, isPidAlive, machineId, runcContainers } from './harness.js';
import {
  place,
  service,
  serviceWithFleet,
  spawnAgent,
  stateDirFor,
  stateRecord,
  unplace,
  waitRegistered,
  waitRunning,
  waitState,
  storeFor,
} from './daemon-harness.js';

const server = etcdForFile(test);

const SLEEPER = service('ExecStart=/bin/sleep 3600');

async function gone(pid: number, message: string, timeoutMs = 20_000): Promise<void> {
  await assertEventually(async () => !(await isPidAlive(pid)), { timeoutMs, message });
}

async function machineLease(store: Store, id: string): Promise<bigint | undefined> {
  return (await store.get(store.keys.machine(id)))?.lease;
}

for (const driver of DRIVERS) {
  test.serial(
    `${driver}: a new agent after SIGKILL adopts its units unrestarted and stops the unplaced`,
    async (t) => {
      const prefix = uniquePrefix('adopt');
      const store = storeFor(t, server(), prefix);
      const first = await spawnAgent(t, { endpoint: server().endpoint, prefix, driver });
      const id = first.machineId;
      await place(store, id, 'stay.service', SLEEPER);
      await place(store, id, 'go.service', SLEEPER);
      const stay = await waitRunning(store, 'stay.service');
      const go = await waitRunning(store, 'go.service');
      // Should its stop fail, its directory is gone and the harness's cleanup cannot find it.
      t.teardown(() => signalPid(go.pid, 'SIGKILL'));
      const oldLease = await machineLease(store, id);

      t.is(await first.kill('SIGKILL'), 'SIGKILL');
      t.true(await isPidAlive(stay.pid), 'units outlive a killed agent');
      await unplace(store, id, 'go.service'); // while no agent runs

      const second = await spawnAgent(t, {
        endpoint: server().endpoint,
        prefix,
        driver,
        machineId: id,
        stateDir: first.stateDir,
      });
      await gone(go.pid, 'the unit unplaced meanwhile is stopped').catch(async (err: unknown) => {
        t.log(second.output().slice(-12_000)); // what the new agent did meanwhile
        const unitLog = join(first.stateDir, id, 'logs', 'go.service.log');
        t.log(await readFile(unitLog, 'utf8').catch(() => '(no unit log)'));
        throw err;
      });
      const newLease = await assertEventually(
        async () => {
          const lease = await machineLease(store, id);
          return lease !== undefined && lease !== oldLease ? lease : false;
        },
        { message: 're-registered under a new lease' },
      );
      const state = await waitState(
        store,
        'stay.service',
        (s) => s.subState === 'running',
        'running',
      );
      t.is(state.pid, stay.pid, 'adopted with its pid unchanged');
      t.true(await isPidAlive(stay.pid));
      // The old record (under the old lease, still alive) may be read first: the new agent
      // rewrites it under its new lease once it has adopted the unit.
      await assertEventually(
        async () => (await store.get(store.keys.state(id, 'stay.service')))?.lease === newLease,
        { message: 'its state moved to the new lease' },
      );
      const adopted = await stateRecord(store, 'stay.service');
      const since = adopted?.since ?? 0n;
      t.true(
        since <= stay.since && since > stay.since - 5_000n,
        `active since its start (${stay.since}), not since the adoption (${since})`,
      );
      await assertEventually(async () => (await stateRecord(store, 'go.service')) === undefined, {
        message: "the stopped unit's state goes (at the latest with the old lease)",
      });
      if (driver === 'runc')
        t.true((await runcContainers()).some((c) => c.startsWith(`flotilla-${id}-stay`)));
      t.true(second.output().includes('adopted unit'), 'the agent says what it adopted');
    },
  );

  test.serial(
    `${driver}: an etcd restart stops nothing, and the agent follows placements after it`,
    async (t) => {
      const prefix = uniquePrefix('etcd-restart');
      const store = storeFor(t, server(), prefix);
      const agent = await spawnAgent(t, { endpoint: server().endpoint, prefix, driver });
      await place(store, agent.machineId, 'a.service', SLEEPER);
      await place(store, agent.machineId, 'b.service', SLEEPER);
      const a = await waitRunning(store, 'a.service');
      const b = await waitRunning(store, 'b.service');
      await server().restart();
      t.true(await isPidAlive(a.pid));
      t.true(await isPidAlive(b.pid));
      await unplace(store, agent.machineId, 'b.service');
      await gone(b.pid, 'a deletion after the restart still stops the unit');
      await place(store, agent.machineId, 'c.service', SLEEPER);
      await waitRunning(store, 'c.service');
      t.like(await stateRecord(store, 'a.service'), { pid: a.pid, subState: 'running' });
      t.true(await isPidAlive(a.pid), 'the untouched unit ran throughout');
      t.is(agent.child.exitCode, null, 'the agent lived through it');
    },
  );

  test.serial(
    `${driver}: cut off from etcd units keep running; back online the ones placed elsewhere stop`,
    async (t) => {
      const prefix = uniquePrefix('partition');
      const store = storeFor(t, server(), prefix);
      const proxy = await startProxy(server().clientPort);
      t.teardown(() => proxy.close());
      const agent = await spawnAgent(t, {
        endpoint: proxy.endpoint,
        prefix,
        driver,
        args: ['--lease-ttl=5s'],
      });
      const id = agent.machineId;
      await place(store, id, 'keep.service', SLEEPER);
      await place(store, id, 'moved.service', SLEEPER);
      await place(
        store,
        id,
        'strict.service',
        serviceWithFleet(['StopOnDisconnect=1s'], 'ExecStart=/bin/sleep 3600'),
      );
      const keep = await waitRunning(store, 'keep.service');
      const moved = await waitRunning(store, 'moved.service');
      const strict = await waitRunning(store, 'strict.service');

      proxy.block('drop');
      // StopOnDisconnect=1s: stopped once the agent sees it is cut off, before its lease ends.
      let strictGoneAt = 0;
      let machineGoneAt = 0;
      await assertEventually(
        async () => {
          if (strictGoneAt === 0 && !(await isPidAlive(strict.pid))) strictGoneAt = Date.now();
          if (machineGoneAt === 0 && (await store.get(store.keys.machine(id))) === undefined)
            machineGoneAt = Date.now();
          return strictGoneAt > 0 && machineGoneAt > 0;
        },
        { message: 'the strict unit stops and the lease expires', intervalMs: 25 },
      );
      t.true(
        strictGoneAt <= machineGoneAt,
        `stopped ${machineGoneAt - strictGoneAt} ms before the machine was lost`,
      );
      await unplace(store, id, 'moved.service'); // "placed elsewhere" while the agent cannot see it
      await sleep(1_000);
      t.true(await isPidAlive(keep.pid), 'a cut-off agent keeps its units running');
      t.true(await isPidAlive(moved.pid), 'even those unplaced meanwhile, until it can see that');

      proxy.unblock();
      await gone(moved.pid, 'back online, the unit placed elsewhere stops');
      await waitRegistered(store, id);
      const again = await waitRunning(store, 'strict.service');
      t.not(again.pid, strict.pid, 'the strict unit, still placed here, starts again');
      t.like(await waitRunning(store, 'keep.service'), { pid: keep.pid });
      t.true(await isPidAlive(keep.pid));
      await assertEventually(
        async () => (await stateRecord(store, 'moved.service')) === undefined,
        {
          message: 'no state is left for the unit that moved',
        },
      );
    },
  );

  test.serial(
    `${driver}: SIGTERM stops the units and removes the machine and its states at once`,
    async (t) => {
      const prefix = uniquePrefix('sigterm');
      const store = storeFor(t, server(), prefix);
      // A long TTL: if the records vanish, it is because the agent revoked its lease.
      const agent = await spawnAgent(t, {
        endpoint: server().endpoint,
        prefix,
        driver,
        args: ['--lease-ttl=60s'],
      });
      await place(store, agent.machineId, 'a.service', SLEEPER);
      await place(store, agent.machineId, 'b.service', SLEEPER);
      const a = await waitRunning(store, 'a.service');
      const b = await waitRunning(store, 'b.service');
      t.is(await agent.kill('SIGTERM'), '0', 'a clean exit');
      t.false(await isPidAlive(a.pid));
      t.false(await isPidAlive(b.pid));
      t.is(await store.get(store.keys.machine(agent.machineId)), undefined, 'the machine is gone');
      t.is(await stateRecord(store, 'a.service'), undefined);
      t.is(await stateRecord(store, 'b.service'), undefined);
    },
  );

  test.serial(
    `${driver}: --keep-units-on-exit leaves units running and registered for the next agent`,
    async (t) => {
      const prefix = uniquePrefix('keep');
      const store = storeFor(t, server(), prefix);
      const args = ['--lease-ttl=60s'];
      const old = await spawnAgent(t, {
        endpoint: server().endpoint,
        prefix,
        driver,
        args: [...args, '--keep-units-on-exit'],
      });
      const id = old.machineId;
      await place(store, id, 'a.service', SLEEPER);
      const a = await waitRunning(store, 'a.service');
      const oldLease = await machineLease(store, id);
      t.is(await old.kill('SIGTERM'), '0');
      t.true(await isPidAlive(a.pid), 'the unit keeps running');
      t.is(
        await machineLease(store, id),
        oldLease,
        'the machine stays registered (lease not revoked)',
      );

      await spawnAgent(t, {
        endpoint: server().endpoint,
        prefix,
        driver,
        machineId: id,
        stateDir: old.stateDir,
        args,
      });
      await assertEventually(async () => (await machineLease(store, id)) !== oldLease, {
        message: 'the new agent registers',
      });
      await sleep(1_000);
      t.like(await waitRunning(store, 'a.service'), { pid: a.pid });
      t.true(await isPidAlive(a.pid), 'adopted, not restarted');
    },
  );

  test.serial(
    `${driver}: two agents with different machine ids share one host and state dir`,
    async (t) => {
      const prefix = uniquePrefix('two');
      const store = storeFor(t, server(), prefix);
      const x = machineId();
      const y = machineId();
      const dir = await stateDirFor(t, x);
      // Before the state dir's own cleanup (of x's units and the directory), which runs last.
      t.teardown(() => killUnits(dir, y));
      await spawnAgent(t, {
        endpoint: server().endpoint,
        prefix,
        driver,
        machineId: x,
        stateDir: dir,
      });
      await spawnAgent(t, {
        endpoint: server().endpoint,
        prefix,
        driver,
        machineId: y,
        stateDir: dir,
      });
      await waitRegistered(store, x);
      await waitRegistered(store, y);
      // The same unit name on both machines (as a global unit would be).
      await place(store, x, 'web.service', SLEEPER);
      await place(store, y, 'web.service', SLEEPER);
      await place(store, x, 'only-x.service', SLEEPER);
      const mainPid = (id: string, unit: string) =>
        assertEventually(
          async () => {
            const pid = Number(
              (await readFile(join(dir, id, 'units', unit, 'main.pid'), 'utf8')).trim(),
            );
            return pid > 0 && (await isPidAlive(pid)) ? pid : false;
          },
          { message: `${unit} runs on ${id}` },
        );
      const wx = await mainPid(x, 'web.service');
      const wy = await mainPid(y, 'web.service');
      await mainPid(x, 'only-x.service');
      t.not(wx, wy);
      t.like(await waitRunning(store, 'only-x.service'), { machine: x });
      if (driver === 'runc') {
        const ids = await runcContainers();
        t.true(ids.includes(`flotilla-${x}-web.service`));
        t.true(ids.includes(`flotilla-${y}-web.service`));
      }
      await unplace(store, x, 'web.service');
      await gone(wx, 'x stops its copy');
      await sleep(500);
      t.true(await isPidAlive(wy), "y's copy of the same unit is untouched");
    },
  );
}

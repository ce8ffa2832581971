/**
 * The agent daemon against a real etcd, with placements written straight to etcd (no
 * scheduler): placements become running units reported in `states/`, deletions stop them,
 * loaded/launched/changed hashes, units that cannot run, and registration. Every test runs
 * with each driver this host supports (process always; runc as root), isolation checks with
 * runc only.
 */
import test from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Machine } from '../../proto/flotilla/v1/records.js';
import { codecs } from '../../store/index.js';
import { parseUnit } from '../../unit/index.js';
import { assertEventually, etcdForFile, uniquePrefix } from '../../testkit/index.js';
import { DRIVERS, isPidAlive } from './harness.js';
import {
  inProcessAgent,
  place,
  placeRaw,
  service,
  stateRecord,
  unplace,
  waitRegistered,
  waitRunning,
  waitState,
  storeFor,
} from './daemon-harness.js';

const server = etcdForFile(test);

const SLEEPER = service('ExecStart=/bin/sleep 3600');

for (const driver of DRIVERS) {
  test.serial(
    `${driver}: a placement becomes a running unit reported under the agent's lease`,
    async (t) => {
      const prefix = uniquePrefix('units');
      const store = storeFor(t, server(), prefix);
      const text = service('ExecStart=/bin/sleep 3600', 'MemoryMax=48M', 'CPUQuota=30%');
      const agent = await inProcessAgent(t, { endpoint: server().endpoint, prefix, driver });
      await waitRegistered(store, agent.machineId);
      const hash = await place(store, agent.machineId, 'web.service', text);
      const state = await waitRunning(store, 'web.service');
      t.like(state, { machine: agent.machineId, hash, loadState: 'loaded', exitStatus: -1 });
      t.true(await isPidAlive(state.pid), 'the reported pid runs');
      const stateKv = await store.get(store.keys.state(agent.machineId, 'web.service'));
      const machineKv = await store.get(store.keys.machine(agent.machineId));
      t.not(stateKv?.lease, 0n);
      t.is(stateKv?.lease, machineKv?.lease, 'the state lives and dies with the machine');
      if (driver === 'runc') {
        const ctx = agent.units.driver.context(
          'web.service',
          parseUnit('web.service', text).service,
        );
        t.is(state.containerId, ctx.containerId);
        const cg = (controller: string, file: string) =>
          readFile(join('/sys/fs/cgroup', controller, ctx.cgroupPath, file), 'utf8').then((s) =>
            s.trim(),
          );
        t.is(await cg('memory', 'memory.limit_in_bytes'), String(48 * 1024 * 1024));
        t.is(await cg('cpu', 'cpu.cfs_quota_us'), '30000');
        t.is(await cg('cpu', 'cpu.cfs_period_us'), '100000');
        const procs = (await cg('memory', 'cgroup.procs')).split('\n');
        t.true(procs.includes(String(state.pid)), 'the unit runs inside that cgroup');
      }
    },
  );

  test.serial(
    `${driver}: deleting the placement stops the unit within TimeoutStopSec and deletes its state`,
    async (t) => {
      const prefix = uniquePrefix('stop');
      const store = storeFor(t, server(), prefix);
      const agent = await inProcessAgent(t, { endpoint: server().endpoint, prefix, driver });
      // Ignores SIGTERM, so only the SIGKILL after TimeoutStopSec= ends it.
      const stubborn = service(
        `ExecStart=/bin/sh -c 'trap "" TERM; while :; do sleep 0.2; done'`,
        'TimeoutStopSec=2s',
      );
      await place(store, agent.machineId, 'stubborn.service', stubborn);
      await place(store, agent.machineId, 'keep.service', SLEEPER);
      const { pid } = await waitRunning(store, 'stubborn.service');
      const keep = await waitRunning(store, 'keep.service');
      const started = Date.now();
      await unplace(store, agent.machineId, 'stubborn.service');
      await assertEventually(async () => !(await isPidAlive(pid)), {
        timeoutMs: 2_000 + 8_000,
        message: 'the unit is killed within TimeoutStopSec (plus slack)',
      });
      await assertEventually(
        async () => (await stateRecord(store, 'stubborn.service')) === undefined,
        {
          message: 'its state record is deleted',
        },
      );
      t.true(Date.now() - started >= 1_900, 'SIGKILL waited for TimeoutStopSec');
      t.true(await isPidAlive(keep.pid), 'the other unit is untouched');
      t.like(await stateRecord(store, 'keep.service'), { activeState: 'active', pid: keep.pid });
    },
  );

  test.serial(
    `${driver}: loaded runs nothing, launched starts it, a new hash restarts it`,
    async (t) => {
      const prefix = uniquePrefix('states');
      const store = storeFor(t, server(), prefix);
      const agent = await inProcessAgent(t, { endpoint: server().endpoint, prefix, driver });
      const hash = await place(store, agent.machineId, 'app.service', SLEEPER, 'loaded');
      const loaded = await waitState(
        store,
        'app.service',
        (s) => s.loadState === 'loaded' && s.activeState === 'inactive',
        'loaded',
      );
      t.like(loaded, { hash, subState: 'dead', pid: 0 });
      t.is(agent.units.get('app.service'), undefined, 'nothing is supervised');

      await place(store, agent.machineId, 'app.service', SLEEPER, 'launched');
      const first = await waitRunning(store, 'app.service');

      const changed = service('ExecStart=/bin/sleep 3601');
      const newHash = await place(store, agent.machineId, 'app.service', changed);
      const second = await waitState(
        store,
        'app.service',
        (s) => s.hash === newHash && s.subState === 'running' && s.pid > 0,
        'restarted with the new hash',
      );
      t.not(second.pid, first.pid);
      await assertEventually(async () => !(await isPidAlive(first.pid)), {
        message: 'the old process ends',
      });

      await place(store, agent.machineId, 'app.service', changed, 'loaded');
      await waitState(
        store,
        'app.service',
        (s) => s.loadState === 'loaded' && s.activeState === 'inactive',
        'back to loaded',
      );
      t.false(await isPidAlive(second.pid), 'loaded stops what ran');
    },
  );

  test.serial(
    `${driver}: units that cannot run fail with the reason while the agent serves the others`,
    async (t) => {
      const prefix = uniquePrefix('fail');
      const store = storeFor(t, server(), prefix);
      const agent = await inProcessAgent(t, { endpoint: server().endpoint, prefix, driver });
      await place(store, agent.machineId, 'before.service', SLEEPER);
      const before = await waitRunning(store, 'before.service');

      await place(store, agent.machineId, 'nobin.service', service('ExecStart=/no/such/program'));
      await place(
        store,
        agent.machineId,
        'nouser.service',
        service('ExecStart=/bin/sleep 3600', 'User=no-such-user-xyz'),
      );
      await placeRaw(
        store,
        agent.machineId,
        'broken.service',
        '[Service]\nExecStart=/bin/true\nRestart=sometimes\n',
        'h-broken',
      );
      await place(store, agent.machineId, 'after.service', SLEEPER);

      const failed = (name: string) =>
        waitState(store, name, (s) => s.activeState === 'failed', 'failed');
      t.regex((await failed('nobin.service')).message, /\/no\/such\/program/);
      t.regex((await failed('nouser.service')).message, /no-such-user-xyz/);
      const broken = await failed('broken.service');
      t.is(broken.loadState, 'error');
      t.regex(broken.message, /broken\.service:3: .*Restart=/);

      await waitRunning(store, 'after.service');
      t.like(await stateRecord(store, 'before.service'), { subState: 'running', pid: before.pid });
      t.true(await isPidAlive(before.pid));
    },
  );

  test.serial(
    `${driver}: registers its machine record and registers again after losing its lease`,
    async (t) => {
      const prefix = uniquePrefix('reg');
      const store = storeFor(t, server(), prefix);
      const agent = await inProcessAgent(t, {
        endpoint: server().endpoint,
        prefix,
        driver,
        args: ['--metadata=region=eu,disk=ssd', '--cpu=1500m', '--memory=1G'],
      });
      await waitRegistered(store, agent.machineId);
      const record = await store.getRecord(codecs.machine, store.keys.machine(agent.machineId));
      t.like(record?.value, {
        id: agent.machineId,
        addresses: ['127.0.0.1'],
        metadata: { region: 'eu', disk: 'ssd' },
        driver,
        agentEndpoint: agent.logsAddress,
      } satisfies Partial<Machine>);
      t.like(record?.value.capacity, { cpuMillicores: 1500n, memoryBytes: 1024n * 1024n * 1024n });
      t.true((record?.value.startedAt ?? 0n) > 0n);

      await place(store, agent.machineId, 'web.service', SLEEPER);
      const running = await waitRunning(store, 'web.service');
      const lease = record?.lease ?? 0n;
      // Revoke the lease, as if it had expired: etcd drops the machine and its states.
      await store.call(undefined, (c) => c.leaseClient.leaseRevoke({ ID: lease.toString() }));
      const again = await assertEventually(
        async () => {
          const m = await store.get(store.keys.machine(agent.machineId));
          return m !== undefined && m.lease !== lease ? m : false;
        },
        { message: 'registered under a new lease' },
      );
      const state = await waitState(
        store,
        'web.service',
        (s) => s.pid === running.pid,
        'state written again',
      );
      t.is(state.subState, 'running');
      t.is((await store.get(store.keys.state(agent.machineId, 'web.service')))?.lease, again.lease);
    },
  );
}

test.serial(
  'an instance without its own record runs its template file, specifiers expanded',
  async (t) => {
    const prefix = uniquePrefix('instance');
    const store = storeFor(t, server(), prefix);
    const agent = await inProcessAgent(t, {
      endpoint: server().endpoint,
      prefix,
      driver: 'process',
    });
    const template = service(`ExecStart=/bin/sh -c 'echo instance=%i name=%n; exec sleep 3600'`);
    const hash = parseUnit('web@.service', template).hash;
    await store.putRecord(codecs.unit, store.keys.unit('web@.service'), {
      name: 'web@.service',
      file: template,
      hash,
      desiredState: 'inactive',
    });
    await store.putRecord(
      codecs.placement,
      store.keys.placement(agent.machineId, 'web@7.service'),
      {
        unit: 'web@7.service',
        machine: agent.machineId,
        hash,
        epoch: 1n,
        desiredState: 'launched',
        ports: [],
      },
    );
    t.like(await waitRunning(store, 'web@7.service'), { hash });
    await assertEventually(
      async () => {
        const got = await agent.units.logs.tail('web@7.service', 20);
        return got.includes('instance=7 name=web@7.service') ? got : false;
      },
      { message: 'the instance ran with %i and %n expanded' },
    );
  },
);

for (const driver of DRIVERS) {
  test.serial(
    `${driver}: a counted instance (no record of its own) runs its count record's file, also after a rollout moved the template on`,
    async (t) => {
      const prefix = uniquePrefix('counted');
      const store = storeFor(t, server(), prefix);
      const agent = await inProcessAgent(t, { endpoint: server().endpoint, prefix, driver });
      const v1 = service(`ExecStart=/bin/sh -c 'echo v1 instance=%i; exec sleep 3600'`);
      const v2 = service(`ExecStart=/bin/sh -c 'echo v2 instance=%i; exec sleep 3600'`);
      const hash1 = parseUnit('web@.service', v1).hash;
      // The template is already on v2 (a rollout under way); instance 3 is still counted on v1.
      await store.putRecord(codecs.unit, store.keys.unit('web@.service'), {
        name: 'web@.service',
        file: v2,
        hash: parseUnit('web@.service', v2).hash,
        desiredState: 'inactive',
      });
      await store.putRecord(codecs['instance-count'], store.keys.instanceCount('web@.service'), {
        template: 'web@.service',
        file: v1,
        hash: hash1,
        desiredState: 'launched',
        ranges: [{ first: 1, last: 5 }],
      });
      await store.putRecord(
        codecs.placement,
        store.keys.placement(agent.machineId, 'web@3.service'),
        {
          unit: 'web@3.service',
          machine: agent.machineId,
          hash: hash1,
          epoch: 1n,
          desiredState: 'launched',
          ports: [],
        },
      );
      t.like(await waitRunning(store, 'web@3.service'), { hash: hash1 });
      await assertEventually(
        async () => {
          const got = await agent.units.logs.tail('web@3.service', 20);
          return got.includes('v1 instance=3') ? got : false;
        },
        { message: "the count record's file ran, %i expanded" },
      );
    },
  );
}

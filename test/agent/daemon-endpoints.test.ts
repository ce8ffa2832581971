/**
 * The agent and [X-Service]: a unit gets its placement's ports as $PORT and
 * $FLOTILLA_PORT_<NAME> (and ${PORT} in ExecStart=); its endpoint record exists while it is
 * active (and, with a health check, healthy), is deleted BEFORE the stop signal when it is
 * unplaced (then DrainSec= passes), and vanishes with the agent's lease when the agent dies.
 */
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Endpoint } from '../../proto/flotilla/v1/records.js';
import { codecs, type Store } from '../../store/index.js';
import { assertEventually, etcdForFile, freePort, uniquePrefix } from '../../testkit/index.js';
import {
  inProcessAgent,
  place,
  service,
  spawnAgent,
  stateRecord,
  storeFor,
  unplace,
  waitRegistered,
  waitRunning,
} from './daemon-harness.js';

const server = etcdForFile(test);

async function endpoint(store: Store, machine: string, unit: string, service = 'web') {
  const key = store.keys.endpoint(service, machine, unit, 'http');
  const kv = await store.get(key);
  return kv === undefined
    ? undefined
    : { value: codecs.endpoint.decode(key, kv.value), lease: kv.lease };
}

function waitEndpoint(
  store: Store,
  machine: string,
  unit: string,
  present: boolean,
  what: string,
): Promise<Endpoint | undefined> {
  return assertEventually(
    async () => {
      const e = await endpoint(store, machine, unit);
      if ((e !== undefined) !== present) throw new Error(e === undefined ? 'absent' : 'present');
      return e?.value;
    },
    { timeoutMs: 30_000, intervalMs: 20, message: what },
  );
}

test.serial(
  'a unit with Port=http gets $PORT and ${PORT}; its endpoint appears while it runs and goes before the stop',
  async (t) => {
    const prefix = uniquePrefix('endpoints');
    const store = storeFor(t, server(), prefix);
    const agent = await inProcessAgent(t, {
      endpoint: server().endpoint,
      prefix,
      driver: 'process',
    });
    await waitRegistered(store, agent.machineId);
    const port = await freePort();
    const text = `${service(
      "ExecStart=/bin/sh -c 'echo argv=${PORT} env=$(printenv FLOTILLA_PORT_HTTP); exec sleep 3600'",
    )}\n[X-Service]\nPort=http\nTags=blue\nDrainSec=3s\n`;
    await place(store, agent.machineId, 'web.service', text, 'launched', [
      { name: 'http', number: port, static: false },
    ]);
    const running = await waitRunning(store, 'web.service');
    const e = await waitEndpoint(store, agent.machineId, 'web.service', true, 'endpoint appears');
    t.like(e, {
      service: 'web',
      unit: 'web.service',
      machine: agent.machineId,
      address: '127.0.0.1',
      port,
      portName: 'http',
      tags: ['blue'],
      health: 'none',
    });
    const machine = await store.get(store.keys.machine(agent.machineId));
    t.is((await endpoint(store, agent.machineId, 'web.service'))?.lease, machine?.lease);
    t.deepEqual(machine && codecs.machine.decode(machine.key, machine.value).portRangeFirst, 20000);
    const lines = await agent.units.logs.tail('web.service', 20);
    t.true(
      lines.some((l) => l.includes(`argv=${port} env=${port}`)),
      lines.join('\n'),
    );

    await unplace(store, agent.machineId, 'web.service');
    await waitEndpoint(store, agent.machineId, 'web.service', false, 'endpoint withdrawn');
    // DrainSec=3s: the unit still runs, same pid, once its endpoint is gone.
    const during = await stateRecord(store, 'web.service');
    t.is(during?.activeState, 'active');
    t.is(during?.pid, running.pid);
    await assertEventually(async () => (await stateRecord(store, 'web.service')) === undefined, {
      timeoutMs: 30_000,
      message: 'the unit stops after the drain',
    });
  },
);

test.serial(
  'new ports in its placement restart the unit with them, and its endpoint follows',
  async (t) => {
    const prefix = uniquePrefix('endpoints-ports');
    const store = storeFor(t, server(), prefix);
    const agent = await inProcessAgent(t, {
      endpoint: server().endpoint,
      prefix,
      driver: 'process',
    });
    await waitRegistered(store, agent.machineId);
    const text = `${service("ExecStart=/bin/sh -c 'echo argv=${PORT}; exec sleep 3600'")}\n[X-Service]\nPort=http\nDrainSec=0\n`;
    const [p1, p2] = [await freePort(), await freePort()];
    await place(store, agent.machineId, 'web.service', text, 'launched', [
      { name: 'http', number: p1, static: false },
    ]);
    const first = await waitRunning(store, 'web.service');
    t.is((await waitEndpoint(store, agent.machineId, 'web.service', true, 'serves'))?.port, p1);
    await place(store, agent.machineId, 'web.service', text, 'launched', [
      { name: 'http', number: p2, static: false },
    ]);
    await assertEventually(
      async () => (await endpoint(store, agent.machineId, 'web.service'))?.value.port === p2,
      { timeoutMs: 30_000, message: 'the endpoint has the new port' },
    );
    const second = await waitRunning(store, 'web.service');
    t.not(second.pid, first.pid, 'restarted');
    const lines = await agent.units.logs.tail('web.service', 20);
    t.true(
      lines.some((l) => l.includes(`argv=${p2}`)),
      lines.join('\n'),
    );
  },
);

test.serial('a health-checked unit serves only while healthy', async (t) => {
  const prefix = uniquePrefix('endpoints-health');
  const store = storeFor(t, server(), prefix);
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-health-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const flag = join(dir, 'ok');
  const agent = await inProcessAgent(t, { endpoint: server().endpoint, prefix, driver: 'process' });
  await waitRegistered(store, agent.machineId);
  const text = `${service(
    'ExecStart=/bin/sleep 3600',
    `HealthCmd=test -f ${flag}`,
    'HealthInterval=200ms',
    'HealthRetries=1',
  )}\n[X-Service]\nPort=http\n`;
  await place(store, agent.machineId, 'web.service', text, 'launched', [
    { name: 'http', number: await freePort(), static: false },
  ]);
  await waitRunning(store, 'web.service');
  // Running but not healthy yet: no endpoint (checked over several health intervals).
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  t.is(await endpoint(store, agent.machineId, 'web.service'), undefined);
  await writeFile(flag, '');
  const e = await waitEndpoint(store, agent.machineId, 'web.service', true, 'healthy: serves');
  t.is(e?.health, 'passing');
  await rm(flag);
  await waitEndpoint(store, agent.machineId, 'web.service', false, 'unhealthy: withdrawn');
  t.is((await stateRecord(store, 'web.service'))?.activeState, 'active', 'it still runs');
});

test.serial("a killed agent's endpoints vanish with its lease", async (t) => {
  const prefix = uniquePrefix('endpoints-lease');
  const store = storeFor(t, server(), prefix);
  const agent = await spawnAgent(t, { endpoint: server().endpoint, prefix, driver: 'process' });
  await waitRegistered(store, agent.machineId);
  const text = `${service('ExecStart=/bin/sleep 3600')}\n[X-Service]\nPort=http\n`;
  await place(store, agent.machineId, 'web.service', text, 'launched', [
    { name: 'http', number: await freePort(), static: false },
  ]);
  await waitEndpoint(store, agent.machineId, 'web.service', true, 'endpoint appears');
  await agent.kill('SIGKILL');
  // --lease-ttl=3s in the harness.
  await waitEndpoint(store, agent.machineId, 'web.service', false, 'gone with the lease');
  t.pass();
});

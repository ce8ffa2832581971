/**
 * flotctl's discovery verbs as a child process against the real API over a real etcd, with
 * the records written as the agent and the API write them: list-services and endpoints as
 * tables and JSON, status showing a unit's ports and whether each is registered, and watch
 * printing endpoint changes.
 */
import test from 'ava';
import { etcdForFile } from '../../testkit/index.js';
import { placeWithPorts, putEndpoint, putService } from '../api/service-records.js';
import { parseJson, startTestApi, type TestApi } from './cli-kit.js';

const etcd = etcdForFile(test);

/** web on two machines: web@1 passing (blue), web@2 no check (green), web@3 not registered. */
async function web(api: TestApi): Promise<void> {
  const { store } = api;
  await putService(store, 'web', { publish: 8080, portName: 'http', units: ['web@.service'] });
  await placeWithPorts(store, 'web@1.service', 'aaaa1111bbbb2222', { http: 20001 });
  await placeWithPorts(store, 'web@2.service', 'cccc3333dddd4444', { http: 20002 });
  await placeWithPorts(store, 'web@3.service', 'cccc3333dddd4444', { http: 20003 });
  await putEndpoint(store, {
    service: 'web',
    unit: 'web@1.service',
    machine: 'aaaa1111bbbb2222',
    address: '10.0.0.1',
    port: 20001,
    tags: ['blue'],
    health: 'passing',
  });
  await putEndpoint(store, {
    service: 'web',
    unit: 'web@2.service',
    machine: 'cccc3333dddd4444',
    address: '10.0.0.2',
    port: 20002,
    tags: ['green'],
  });
  await putService(store, 'batch', { units: ['batch.service'] });
}

test('list-services prints NAME, ENDPOINTS healthy/total, PUBLISH and TAGS; -o json flat rows', async (t) => {
  const api = await startTestApi(t, etcd());
  await web(api);
  const table = await api.run(['list-services']);
  t.is(table.code, 0, table.stderr);
  t.is(
    table.stdout,
    [
      'NAME   ENDPOINTS  PUBLISH  TAGS',
      'batch  0/0        -        -',
      'web    2/3        8080     blue,green',
      '',
    ].join('\n'),
  );
  const json = await api.run(['-o', 'json', 'list-services']);
  t.deepEqual(parseJson(t, json.stdout), [
    {
      name: 'batch',
      healthy: 0,
      total: 0,
      publish: null,
      publishPortName: null,
      tags: null,
      units: 'batch.service',
      declared: true,
    },
    {
      name: 'web',
      healthy: 2,
      total: 3,
      publish: 8080,
      publishPortName: 'http',
      tags: 'blue,green',
      units: 'web@.service',
      declared: true,
    },
  ]);
});

test('endpoints NAME prints UNIT, MACHINE, ADDRESS, HEALTH, TAGS; --tag selects; -o json; unknown is exit 1', async (t) => {
  const api = await startTestApi(t, etcd());
  await web(api);
  const table = await api.run(['endpoints', 'web']);
  t.is(table.code, 0, table.stderr);
  t.is(
    table.stdout,
    [
      'UNIT           MACHINE      ADDRESS         HEALTH   TAGS',
      'web@1.service  aaaa1111...  10.0.0.1:20001  passing  blue',
      'web@2.service  cccc3333...  10.0.0.2:20002  none     green',
      '',
    ].join('\n'),
  );
  const green = await api.run(['endpoints', 'web', '--tag', 'green', '--no-legend', '-l']);
  t.is(green.stdout, 'web@2.service  cccc3333dddd4444  10.0.0.2:20002  none  green\n');
  const json = await api.run(['-o', 'json', 'endpoints', 'web', '--tag', 'blue']);
  t.like((parseJson(t, json.stdout) as unknown[])[0], {
    service: 'web',
    unit: 'web@1.service',
    machine: 'aaaa1111bbbb2222',
    address: '10.0.0.1',
    port: 20001,
    portName: 'http',
    health: 'passing',
    healthy: true,
    tags: 'blue',
  });
  const unknown = await api.run(['endpoints', 'nope']);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /service nope is not known: flotctl list-services lists the services/);
  const usage = await api.run(['endpoints']);
  t.is(usage.code, 2);
  const completed = await api.run(['__complete', 'endpoints', 'w']);
  t.is(completed.stdout, 'web\n', 'shell completion offers the service names');
});

test("status shows a unit's ports and whether each endpoint is registered", async (t) => {
  const api = await startTestApi(t, etcd());
  await web(api);
  const one = await api.run(['status', '-n', '0', 'web@1.service']);
  t.is(one.code, 0, one.stderr);
  t.regex(
    one.stdout,
    /Endpoints: +http 10\.0\.0\.1:20001 \(dynamic\): registered in web, passing, tags blue\n/,
  );
  const three = await api.run(['status', '-n', '0', 'web@3.service']);
  t.regex(
    three.stdout,
    /Endpoints: +http port 20003 \(dynamic\): not registered \(not serving\)\n/,
  );
  const json = await api.run(['-o', 'json', 'status', '-n', '0', 'web@1.service']);
  const [status] = parseJson(t, json.stdout) as { endpoints?: { healthy: boolean }[] }[];
  t.is(status?.endpoints?.length, 1);
  t.is(status?.endpoints?.[0]?.healthy, true);
});

test('watch prints an endpoint joining and leaving its service', async (t) => {
  const api = await startTestApi(t, etcd());
  await putService(api.store, 'web', { units: ['web@.service'] });
  // From the next revision on: the put and delete below whenever flotctl comes up.
  const from = (await api.store.revision()) + 1n;
  const live = api.spawn(['watch', '--unit', 'web@*', '--from-revision', String(from)]);
  const { lease } = await api.store.grantLease(30);
  await putEndpoint(api.store, {
    service: 'web',
    unit: 'web@1.service',
    machine: 'aaaa1111bbbb2222',
    address: '10.0.0.1',
    port: 20001,
    tags: ['blue'],
    lease,
  });
  await live.waitFor(
    /endpoint +web@1\.service +aaaa1111\.\.\. +web\/http 10\.0\.0\.1:20001 added \(none\) \[blue\]/,
  );
  await api.store.revokeLease(lease);
  await live.waitFor(
    /endpoint +web@1\.service +aaaa1111\.\.\. +web\/http 10\.0\.0\.1:20001 removed/,
  );
  t.is(await live.stop(), 0);
});

/**
 * The Services API over a real etcd, with the records written as their writers write them
 * (services/ at submit, endpoints/ by the agent under its lease, placements with ports):
 * counts, tags, filters, paging, endpoints vanishing with the agent's lease, endpoint events,
 * and an auth policy narrowing what a caller sees.
 */
import { credentials, Metadata, status } from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import type { Event } from '../../proto/flotilla/v1/events.js';
import {
  ListEndpointsRequest,
  ServicesClient,
  type ListEndpointsResponse,
  type ListServicesResponse,
} from '../../proto/flotilla/v1/services.js';
import { startApiServer } from '../../scheduler/api/server.js';
import { hashToken, parsePolicy } from '../../scheduler/gate/auth-policy.js';
import { openStore } from '../../store/index.js';
import { assertEventually, etcdForFile, uniquePrefix } from '../../testkit/index.js';
import { CALL_TIMEOUT_MS, failure, quietLogger, startApi, type Api } from './api-kit.js';
import { deleteEndpoint, placeWithPorts, putEndpoint, putService } from './service-records.js';

const etcd = etcdForFile(test);

interface Services {
  list(pageSize?: number, pageToken?: string): Promise<ListServicesResponse>;
  endpoints(r: Partial<ListEndpointsRequest>): Promise<ListEndpointsResponse>;
}

function servicesOf(t: ExecutionContext, address: string, token?: string): Services {
  const client = new ServicesClient(address, credentials.createInsecure());
  t.teardown(() => client.close());
  const md = (): Metadata => {
    const m = new Metadata();
    if (token !== undefined) m.set('authorization', `Bearer ${token}`);
    return m;
  };
  const call = <Req, Res>(
    method: (
      r: Req,
      m: Metadata,
      o: { deadline: number },
      cb: (e: Error | null, r: Res) => void,
    ) => unknown,
    req: Req,
  ): Promise<Res> =>
    new Promise((resolve, reject) =>
      method(req, md(), { deadline: Date.now() + CALL_TIMEOUT_MS }, (err, res) =>
        err === null ? resolve(res) : reject(err),
      ),
    );
  return {
    list: (pageSize = 0, pageToken = '') =>
      call(client.listServices.bind(client), { pageSize, pageToken }),
    endpoints: (r) =>
      call(client.listEndpoints.bind(client), { ...ListEndpointsRequest.create(), ...r }),
  };
}

/** web: 3 instances placed on 2 machines; 2 registered (one failing its check), 1 not yet. */
async function webCluster(api: Api): Promise<void> {
  const { store } = api;
  await putService(store, 'web', { publish: 8080, portName: 'http', units: ['web@.service'] });
  await placeWithPorts(store, 'web@1.service', 'm1', { http: 20001 });
  await placeWithPorts(store, 'web@2.service', 'm2', { http: 20002 });
  await placeWithPorts(store, 'web@3.service', 'm2', { http: 20003 });
  await putEndpoint(store, {
    service: 'web',
    unit: 'web@1.service',
    machine: 'm1',
    address: '10.0.0.1',
    port: 20001,
    tags: ['blue'],
    health: 'passing',
  });
  await putEndpoint(store, {
    service: 'web',
    unit: 'web@2.service',
    machine: 'm2',
    address: '10.0.0.2',
    port: 20002,
    tags: ['green', 'canary'],
    health: 'critical',
  });
}

test('ListServices counts healthy of all endpoints, placed ports without one included, with publish and tags', async (t) => {
  const api = await startApi(t, etcd());
  await webCluster(api);
  // Endpoints of a service no submitted unit declares any more still list it.
  await putEndpoint(api.store, { service: 'old', unit: 'old.service', machine: 'm1', port: 9 });
  const res = await servicesOf(t, api.server.address).list();
  t.deepEqual(
    res.services.map((s) => [s.name, s.healthy, s.total, s.publish, s.tags, s.declared]),
    [
      ['old', 1, 1, 0, [], false],
      ['web', 1, 3, 8080, ['blue', 'canary', 'green'], true],
    ],
  );
  t.deepEqual(res.services[1]?.units, ['web@.service']);
  t.true(res.revision > 0n);
});

test('ListEndpoints lists a service in machine and unit order, by tag, healthy only, or one unit', async (t) => {
  const api = await startApi(t, etcd());
  await webCluster(api);
  const svc = servicesOf(t, api.server.address);
  const all = await svc.endpoints({ service: 'web' });
  t.deepEqual(
    all.endpoints.map((e) => [
      e.endpoint?.unit,
      `${e.endpoint?.address}:${e.endpoint?.port}`,
      e.healthy,
    ]),
    [
      ['web@1.service', '10.0.0.1:20001', true],
      ['web@2.service', '10.0.0.2:20002', false],
    ],
  );
  t.is(all.service?.publish, 8080);
  const green = await svc.endpoints({ service: 'web', tag: 'green' });
  t.deepEqual(
    green.endpoints.map((e) => e.endpoint?.unit),
    ['web@2.service'],
  );
  const healthy = await svc.endpoints({ service: 'web', healthyOnly: true });
  t.deepEqual(
    healthy.endpoints.map((e) => e.endpoint?.unit),
    ['web@1.service'],
  );
  const one = await svc.endpoints({ unit: 'web@2.service' });
  t.deepEqual(
    one.endpoints.map((e) => e.endpoint?.port),
    [20002],
  );

  const unknown = await failure(svc.endpoints({ service: 'nope' }));
  t.is(unknown.code, status.NOT_FOUND);
  t.regex(unknown.details, /service nope is not known: flotctl list-services/);
  const bad = await failure(svc.endpoints({ service: 'a/b' }));
  t.is(bad.code, status.INVALID_ARGUMENT);
  const none = await failure(svc.endpoints({}));
  t.is(none.code, status.INVALID_ARGUMENT);
});

test('services and endpoints come a page at a time, each once, in order', async (t) => {
  const api = await startApi(t, etcd());
  const names = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
  for (const [i, name] of names.entries()) {
    // Some declared, some only with endpoints: the pages merge both.
    if (i % 2 === 0) await putService(api.store, name, { units: [`${name}.service`] });
    else
      await putEndpoint(api.store, {
        service: name,
        unit: `${name}.service`,
        machine: 'm',
        port: i,
      });
  }
  for (let i = 0; i < 5; i++) {
    await putEndpoint(api.store, {
      service: 'a',
      unit: `a@${i}.service`,
      machine: 'm',
      port: 100 + i,
    });
  }
  const svc = servicesOf(t, api.server.address);
  const seen: string[][] = [];
  let token = '';
  do {
    const page = await svc.list(3, token);
    seen.push(page.services.map((s) => s.name));
    token = page.nextPageToken;
  } while (token !== '');
  t.deepEqual(seen, [['a', 'b', 'c'], ['d', 'e', 'f'], ['g']]);

  const ports: number[][] = [];
  token = '';
  do {
    const page = await svc.endpoints({ service: 'a', pageSize: 2, pageToken: token });
    ports.push(page.endpoints.map((e) => e.endpoint?.port ?? 0));
    token = page.nextPageToken;
  } while (token !== '');
  t.deepEqual(ports, [[100, 101], [102, 103], [104]]);

  const bad = await failure(svc.list(3, 'not-a-token!'));
  t.is(bad.code, status.INVALID_ARGUMENT);
});

test("an agent's endpoints vanish with its lease, and watchers see endpoint events", async (t) => {
  const api = await startApi(t, etcd());
  await putService(api.store, 'api', { units: ['api@.service'] });
  const events: Event[] = [];
  const stream = api.watch({ unitGlob: 'api@*' });
  stream.on('data', (e: Event) => events.push(e));
  await new Promise((resolve) => stream.once('metadata', resolve));
  const { lease } = await api.store.grantLease(30);
  await putEndpoint(api.store, {
    service: 'api',
    unit: 'api@1.service',
    machine: 'm1',
    port: 21000,
    portName: 'grpc',
    tags: ['v2'],
    lease,
  });
  await putEndpoint(api.store, { service: 'other', unit: 'other.service', machine: 'm1', port: 1 });
  const svc = servicesOf(t, api.server.address);
  t.is((await svc.endpoints({ service: 'api' })).endpoints.length, 1);

  await api.store.revokeLease(lease); // the agent's lease ends: a lost machine
  t.deepEqual((await svc.endpoints({ service: 'api' })).endpoints, []);
  const added = await assertEventually(() => {
    const put = events.find((e) => e.kind === 'endpoint' && e.type === 'put');
    const gone = events.find((e) => e.kind === 'endpoint' && e.type === 'delete');
    return put !== undefined && gone !== undefined && { put, gone };
  });
  t.like(added.put, { name: 'api@1.service', machine: 'm1', serviceName: 'api', portName: 'grpc' });
  t.is(added.put.endpoint?.port, 21000);
  t.like(added.gone, { name: 'api@1.service', serviceName: 'api', portName: 'grpc' });
  // The unit glob filters endpoint events by their unit: other.service's never came.
  t.false(events.some((e) => e.name === 'other.service'));
});

test('a policy narrows services and endpoints to the units the caller may read', async (t) => {
  const store = openStore({ endpoints: etcd().endpoint, prefix: uniquePrefix(t.title) });
  const policy = parsePolicy(
    'policy.json',
    JSON.stringify({
      roles: {
        'team-a': [{ verbs: ['read'], units: ['team-a-*'] }],
        deploy: [{ verbs: ['submit'], units: ['*'] }],
      },
      identities: [
        { name: 'a', tokenSha256: hashToken('token-team-a-0123'), roles: ['team-a'] },
        { name: 'd', tokenSha256: hashToken('token-deploy-0123'), roles: ['deploy'] },
      ],
    }),
  );
  const server = await startApiServer({
    store,
    listen: '127.0.0.1:0',
    logger: quietLogger,
    policy,
  });
  t.teardown(async () => {
    await server.close();
    store.close();
  });
  await putService(store, 'team-a-web', { units: ['team-a-web@.service'] });
  await putService(store, 'billing', { units: ['billing@.service'] });
  // One service served by units of both teams: a caller sees its own instances only.
  await putService(store, 'shared', { units: ['team-a-shared.service', 'billing-shared.service'] });
  for (const [service, unit] of [
    ['team-a-web', 'team-a-web@1.service'],
    ['billing', 'billing@1.service'],
    ['shared', 'team-a-shared.service'],
    ['shared', 'billing-shared.service'],
  ] as const) {
    await putEndpoint(store, { service, unit, machine: 'm1', port: unit.length });
  }
  const teamA = servicesOf(t, server.address, 'token-team-a-0123');
  const listed = await teamA.list();
  t.deepEqual(
    listed.services.map((s) => [s.name, s.total]),
    [
      ['shared', 1],
      ['team-a-web', 1],
    ],
  );
  const shared = await teamA.endpoints({ service: 'shared' });
  t.deepEqual(
    shared.endpoints.map((e) => e.endpoint?.unit),
    ['team-a-shared.service'],
  );
  const hidden = await failure(teamA.endpoints({ service: 'billing' }));
  t.is(hidden.code, status.NOT_FOUND, 'a service the caller may not read is not known to it');

  const noRead = await failure(servicesOf(t, server.address, 'token-deploy-0123').list());
  t.is(noRead.code, status.PERMISSION_DENIED);
  t.regex(noRead.details, /may not read \(Services\.ListServices\)/);
});

test('an endpoint removed before its unit stops leaves the listing at once', async (t) => {
  const api = await startApi(t, etcd());
  await webCluster(api);
  await deleteEndpoint(api.store, { service: 'web', machine: 'm1', unit: 'web@1.service' });
  const res = await servicesOf(t, api.server.address).list();
  // web@1 is still placed with its port: counted, not healthy.
  t.like(res.services[0], { name: 'web', healthy: 0, total: 3 });
});

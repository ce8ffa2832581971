/**
 * The JSON API over a real HTTP listener, a real etcd and the gRPC handlers' own functions:
 * every route's happy path, and each error mapped to its HTTP status with a stable code
 * (a refused request writes nothing).
 */
import test from 'ava';
import { codecs } from '../../store/index.js';
import { etcdForFile, makeMachine, unitText } from '../../testkit/index.js';
import { fingerprint } from '../api/api-kit.js';
import { putEndpoint } from '../api/service-records.js';
import { file, startHttp } from './http-kit.js';

const etcd = etcdForFile(test);

test('a submitted unit is listed, shown with its file, started, stopped, unloaded and destroyed', async (t) => {
  const http = await startHttp(t, etcd());
  const submit = await http.fetch('/api/v1/units', {
    body: { files: [file('web.service', unitText()), file('db.service', unitText())] },
  });
  t.is(submit.status, 200, submit.text);
  t.deepEqual((submit.json['created'] as string[]).sort(), ['db.service', 'web.service']);

  const list = await http.fetch('/api/v1/units?glob=we*');
  t.is(list.status, 200);
  const units = list.json['units'] as { unit: { name: string } }[];
  t.deepEqual(
    units.map((u) => u.unit.name),
    ['web.service'],
  );
  const page = await http.fetch('/api/v1/units?pageSize=1');
  t.is((page.json['units'] as unknown[]).length, 1);
  t.truthy(page.json['nextPageToken']);
  const next = await http.fetch(
    `/api/v1/units?pageSize=1&pageToken=${encodeURIComponent(String(page.json['nextPageToken']))}`,
  );
  t.is((next.json['units'] as { unit: { name: string } }[])[0]?.unit.name, 'web.service');

  const one = await http.fetch('/api/v1/units/web.service');
  t.is(one.status, 200);
  t.is((one.json['unit'] as { name: string }).name, 'web.service');
  const text = await http.fetch('/api/v1/units/web.service/file');
  t.is(text.status, 200);
  t.is(text.text, unitText());
  t.regex(text.headers.get('content-type') ?? '', /^text\/plain/);

  const start = await http.fetch('/api/v1/units/web.service/start', {
    body: { allowPending: true },
  });
  t.is(start.status, 200, start.text);
  t.deepEqual(start.json['changed'], ['web.service']);
  const stop = await http.fetch('/api/v1/units/web.service/stop', { method: 'POST' });
  t.deepEqual(stop.json['changed'], ['web.service']);
  const unload = await http.fetch('/api/v1/actions/unload', { body: { names: ['web.service'] } });
  t.deepEqual(unload.json['changed'], ['web.service']);
  const destroy = await http.fetch('/api/v1/units/web.service', { method: 'DELETE' });
  t.is(destroy.status, 200, destroy.text);
  t.deepEqual(destroy.json['destroyed'], ['web.service']);
  const gone = await http.fetch('/api/v1/units/web.service');
  t.is(gone.status, 404);
  t.is(gone.json.error?.code, 'NOT_FOUND');
});

test('a unit file with an error is refused with 400 naming its line, and nothing is written', async (t) => {
  const http = await startHttp(t, etcd());
  const before = await fingerprint(http.store);
  const bad = '[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n[X-Fleet]\nNoSuchKey=1\n';
  const res = await http.fetch('/api/v1/units', { body: { files: [file('bad.service', bad)] } });
  t.is(res.status, 400);
  t.is(res.json.error?.code, 'INVALID_ARGUMENT');
  t.is(res.json.error?.problems?.[0]?.file, 'bad.service');
  t.is(res.json.error?.problems?.[0]?.line, 6);
  t.regex(res.json.error?.message ?? '', /bad\.service:6:/);
  t.deepEqual(await fingerprint(http.store), before);
});

test('start without room is 409 from admission; scale, plan, update, rollout and rollback answer', async (t) => {
  const http = await startHttp(t, etcd());
  await http.fetch('/api/v1/units', { body: { files: [file('web@.service', unitText())] } });
  const refused = await http.fetch('/api/v1/units/web@.service/scale', { body: { count: 2 } });
  t.is(refused.status, 409, refused.text);
  t.is(refused.json.error?.code, 'FAILED_PRECONDITION');
  const scaled = await http.fetch('/api/v1/units/web@.service/scale', {
    body: { count: 2, allowPending: true },
  });
  t.is(scaled.status, 200, scaled.text);
  t.is(scaled.json['template'], 'web@.service');
  const typo = await http.fetch('/api/v1/units/web@.service/scale', { body: { count: 'six' } });
  t.is(typo.status, 400);
  t.regex(typo.json.error?.message ?? '', /count/);

  const plan = await http.fetch('/api/v1/plan', {
    body: { files: [file('new.service', unitText())] },
  });
  t.is(plan.status, 200, plan.text);
  t.is((plan.json['units'] as { name: string }[])[0]?.name, 'new.service');

  const update = await http.fetch('/api/v1/units/web@.service/update', {
    body: { contents: unitText({ exec: '/bin/sleep 7200' }) },
  });
  t.is(update.status, 200, update.text);
  const rollout = await http.fetch('/api/v1/rollouts/web@.service');
  t.is(rollout.status, 200, rollout.text);
  t.is((rollout.json['rollout'] as { unit: string }).unit, 'web@.service');
  const none = await http.fetch('/api/v1/rollouts/nothing.service');
  t.is(none.status, 404);
  const rollback = await http.fetch('/api/v1/rollouts/web@.service/rollback', { method: 'POST' });
  t.true([200, 409].includes(rollback.status), rollback.text);
});

test('machines are listed, drained and undrained; an unknown machine is 404', async (t) => {
  const http = await startHttp(t, etcd());
  const id = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
  await http.store.putRecord(codecs.machine, http.store.keys.machine(id), makeMachine({ id }));
  const list = await http.fetch('/api/v1/machines');
  t.is(list.status, 200);
  t.is((list.json['machines'] as { machine: { id: string } }[])[0]?.machine.id, id);
  const drain = await http.fetch(`/api/v1/machines/${id}/drain`, { method: 'POST' });
  t.is(drain.status, 200, drain.text);
  t.true(drain.json['drained']);
  const undrain = await http.fetch(`/api/v1/machines/${id}/undrain`, { method: 'POST' });
  t.is(undrain.status, 200);
  t.falsy(undrain.json['drained']);
  const unknown = await http.fetch('/api/v1/machines/ffff/drain', { method: 'POST' });
  t.is(unknown.status, 404, unknown.text);
  const schedulers = await http.fetch('/api/v1/schedulers');
  t.is(schedulers.status, 200);
});

test('bad requests get JSON errors with stable codes: 404, 405, 400, 413, 415', async (t) => {
  const http = await startHttp(t, etcd(), { maxBodyBytes: 1024 });
  const before = await fingerprint(http.store);
  const cases: [string, Parameters<typeof http.fetch>[1], number, string][] = [
    ['/api/v1/nothing', {}, 404, 'NOT_FOUND'],
    ['/api/v1/units', { method: 'PUT' }, 405, 'METHOD_NOT_ALLOWED'],
    ['/api/v1/units?pageSize=x', {}, 400, 'INVALID_ARGUMENT'],
    ['/api/v1/units?pageSize=-1', {}, 400, 'INVALID_ARGUMENT'],
    ['/api/v1/units/not a unit', {}, 400, 'INVALID_ARGUMENT'],
    ['/api/v1/units', { body: 'x'.repeat(2000) }, 413, 'PAYLOAD_TOO_LARGE'],
    [
      '/api/v1/units',
      { body: 'files=1', headers: { 'content-type': 'text/plain' } },
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    ['/api/v1/units', { body: '{"files": [' }, 400, 'INVALID_ARGUMENT'],
    ['/api/v1/units', { body: { files: [], extra: 1 } }, 400, 'INVALID_ARGUMENT'],
    ['/api/v1/units/web.service/explode', { method: 'POST' }, 404, 'NOT_FOUND'],
  ];
  for (const [path, init, status, code] of cases) {
    const res = await http.fetch(path, init);
    t.is(res.status, status, `${path}: ${res.text}`);
    t.is(res.json.error?.code, code, path);
    t.truthy(res.json.error?.message, path);
  }
  t.deepEqual(await fingerprint(http.store), before);
});

test('a request that names another host than the loopback listener is refused (DNS rebinding)', async (t) => {
  const http = await startHttp(t, etcd());
  const { request: raw } = await import('node:http');
  const status = await new Promise<number>((resolve, reject) => {
    const req = raw(
      `${http.url}/api/v1/units`,
      { headers: { host: 'evil.example:4646' } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end();
  });
  t.is(status, 421);
});

test('a submitted service is listed with its published port, and its endpoints by tag', async (t) => {
  const http = await startHttp(t, etcd());
  const web = `${unitText()}\n[X-Service]\nPort=http\nPublish=18080\nTags=blue\n`;
  const submit = await http.fetch('/api/v1/units', {
    body: { files: [file('web@.service', web)] },
  });
  t.is(submit.status, 200, submit.text);
  for (const [unit, tags] of [
    ['web@1.service', ['blue']],
    ['web@2.service', ['green']],
  ] as const) {
    await putEndpoint(http.store, {
      service: 'web',
      unit,
      machine: 'm1',
      port: 20001,
      tags: [...tags],
    });
  }
  const services = await http.fetch('/api/v1/services');
  t.is(services.status, 200, services.text);
  const [svc] = services.json['services'] as { name: string; healthy: number; publish: number }[];
  t.like(svc, { name: 'web', healthy: 2, publish: 18080 });
  const blue = await http.fetch('/api/v1/services/web/endpoints?tag=blue');
  t.is(blue.status, 200, blue.text);
  const endpoints = blue.json['endpoints'] as { endpoint: { unit: string } }[];
  t.deepEqual(
    endpoints.map((e) => e.endpoint.unit),
    ['web@1.service'],
  );
  const none = await http.fetch('/api/v1/services/nope/endpoints');
  t.is(none.status, 404, none.text);
});

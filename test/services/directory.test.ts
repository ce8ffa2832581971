/**
 * The agent's service directory over etcd (agent/sync/service-directory.ts): endpoints are
 * keyed by the machine that publishes them, and indexed here by service; endpoints an agent
 * of an earlier version wrote under the old keys (`endpoints/<service>/<machine>/...`) serve
 * alike until that agent restarts and writes them anew.
 */
import test from 'ava';
import { codecs } from '../../store/index.js';
import { assertEventually, etcdForFile, uniquePrefix } from '../../testkit/index.js';
import { directoryOn, putEndpoint, storeOn } from './services-kit.js';

const server = etcdForFile(test);

test("a service's view holds its endpoints from every machine and both key forms, and no other service's", async (t) => {
  const store = storeOn(t, server(), uniquePrefix('dir'));
  const directory = await directoryOn(t, store);
  const view = directory.acquire('api');
  t.teardown(() => directory.release('api'));
  await view.ready();
  let changes = 0;
  view.onChange(() => changes++);
  const ports = (): number[] => view.serving().map((e) => e.port);

  await putEndpoint(store, 'api', 'm2', 'api@2.service', 2002);
  // An earlier agent of m1 published under the old key.
  const old = store.keys.legacyEndpoint('api', 'm1', 'api@1.service', 'http');
  await store.put(
    old,
    codecs.endpoint.encode({
      service: 'api',
      unit: 'api@1.service',
      machine: 'm1',
      address: '127.0.0.1',
      port: 2001,
      portName: 'http',
      tags: [],
      health: 'none',
      sinceUnixMs: 1n,
    }),
  );
  await assertEventually(() => ports().length === 2, { message: 'both endpoints serve' });
  t.deepEqual(ports(), [2001, 2002], 'in machine order, whatever the key form');

  const seen = changes;
  await putEndpoint(store, 'web', 'm1', 'web.service', 3001);
  await putEndpoint(store, 'api', 'm3', 'api@3.service', 2003);
  await assertEventually(() => ports().length === 3);
  t.is(changes, seen + 1, "another service's endpoint does not disturb this view");

  // m1's agent restarts as this version: the new key first, then the old one goes.
  await putEndpoint(store, 'api', 'm1', 'api@1.service', 2011);
  await store.delete(old);
  // A later write, seen after the deletion: the deletion has been taken in by then.
  await putEndpoint(store, 'api', 'm4', 'api@4.service', 2004);
  await assertEventually(() => ports().length === 4, { message: 'the later write is in' });
  t.deepEqual(ports(), [2011, 2002, 2003, 2004], 'the old key going left the new record');
});

/**
 * The routing mesh of one machine against a real etcd and real TCP backends: it listens on
 * every published port, spreads connections over the serving endpoints, steps over a dead
 * one, follows endpoint and service changes, and survives a port it cannot have.
 */
import test from 'ava';
import { createServer } from 'node:net';
import { RoutingMesh, type MeshProblem } from '../../agent/mesh/routing-mesh.js';
import { assertEventually, etcdForFile, freePort, uniquePrefix } from '../../testkit/index.js';
import {
  ask,
  backend,
  directoryOn,
  putEndpoint,
  putService,
  quiet,
  storeOn,
} from './services-kit.js';

const server = etcdForFile(test);

async function meshOn(t: Parameters<typeof directoryOn>[0], label: string) {
  const store = storeOn(t, server(), uniquePrefix(label));
  const directory = await directoryOn(t, store);
  const problems: MeshProblem[][] = [];
  const mesh = new RoutingMesh(directory, quiet, {
    listenAddress: '127.0.0.1',
    retryMs: 200,
    onProblems: (p) => problems.push([...p]),
  });
  mesh.start();
  t.teardown(() => mesh.close());
  return { store, directory, mesh, problems };
}

test('a published port spreads connections round robin over every serving endpoint', async (t) => {
  const { store } = await meshOn(t, 'mesh-rr');
  const port = await freePort();
  const backends = await Promise.all(['a', 'b', 'c'].map((n) => backend(t, n)));
  for (const [i, b] of backends.entries()) {
    await putEndpoint(store, 'web', `m${i}`, `web@${i}.service`, b.port);
  }
  await putService(store, 'web', port);
  await assertEventually(async () => (await ask(port)) !== '', { message: 'mesh listens' });
  await assertEventually(
    async () => {
      const seen = new Map<string, number>();
      for (let i = 0; i < 30; i++) {
        const who = await ask(port);
        seen.set(who, (seen.get(who) ?? 0) + 1);
      }
      // Round robin: 30 connections over 3 endpoints are 10 each.
      return ['a', 'b', 'c'].every((n) => seen.get(n) === 10) || (t.log([...seen]), false);
    },
    { message: 'each endpoint gets a third' },
  );
  t.pass();
});

test("a dead endpoint's connect fails over to the next, so no connection is lost", async (t) => {
  const { store, mesh } = await meshOn(t, 'mesh-dead');
  const port = await freePort();
  const alive = await backend(t, 'alive');
  const dead = await backend(t, 'dead');
  await dead.close(); // its record stays: a crashed instance whose record has not gone yet
  await putEndpoint(store, 'api', 'm1', 'api@1.service', dead.port);
  await putEndpoint(store, 'api', 'm2', 'api@2.service', alive.port);
  await putService(store, 'api', port);
  await assertEventually(() => mesh.listening().some((l) => l.backends === 2));
  for (let i = 0; i < 20; i++) t.is(await ask(port), 'alive');
  const stats = mesh.listening()[0]?.stats;
  t.true((stats?.connectFailures ?? 0) >= 1, 'the dead endpoint was tried');
  t.is(stats?.refused, 0);
});

test('an endpoint removed leaves the mesh within 1 s', async (t) => {
  const { store } = await meshOn(t, 'mesh-removed');
  const port = await freePort();
  const one = await backend(t, 'one');
  const two = await backend(t, 'two');
  const key = await putEndpoint(store, 'svc', 'm1', 'svc@1.service', one.port);
  await putEndpoint(store, 'svc', 'm2', 'svc@2.service', two.port);
  await putService(store, 'svc', port);
  await assertEventually(async () => (await ask(port)) === 'one');
  const removedAt = Date.now();
  await store.delete(key);
  // Both backends still run: only the record says `one` no longer serves.
  await assertEventually(
    async () => {
      for (let i = 0; i < 4; i++) if ((await ask(port)) !== 'two') return false;
      return true;
    },
    { timeoutMs: 5_000, intervalMs: 10 },
  );
  const took = Date.now() - removedAt;
  t.log(`endpoint removal reached the mesh in ${took} ms`);
  t.true(took < 1_000, `took ${took} ms`);
});

test('a service with no serving endpoint closes connections at once; one added serves', async (t) => {
  const { store } = await meshOn(t, 'mesh-empty');
  const port = await freePort();
  await putService(store, 'late', port);
  await assertEventually(async () => (await ask(port).catch(() => 'refused')) === '', {
    message: 'listening, nothing to forward to',
  });
  const b = await backend(t, 'late-1');
  await putEndpoint(store, 'late', 'm1', 'late@1.service', b.port);
  await assertEventually(async () => (await ask(port)) === 'late-1');
  t.pass();
});

test('only endpoints of the published Port= name take mesh traffic', async (t) => {
  const { store } = await meshOn(t, 'mesh-portname');
  const port = await freePort();
  const http = await backend(t, 'http');
  const admin = await backend(t, 'admin');
  await putEndpoint(store, 'two', 'm1', 'two@1.service', http.port, { portName: 'http' });
  await putEndpoint(store, 'two', 'm1', 'two@1.service', admin.port, { portName: 'admin' });
  await putService(store, 'two', port, 'http');
  await assertEventually(async () => (await ask(port)) === 'http');
  for (let i = 0; i < 6; i++) t.is(await ask(port), 'http');
});

test('a port already taken is reported, retried, and served once it is free', async (t) => {
  const { store, mesh, problems } = await meshOn(t, 'mesh-taken');
  const squatter = createServer();
  const port = await freePort();
  await new Promise<void>((resolve) => squatter.listen({ host: '127.0.0.1', port }, resolve));
  t.teardown(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
  const b = await backend(t, 'b');
  await putEndpoint(store, 'taken', 'm1', 'taken@1.service', b.port);
  await putService(store, 'taken', port);
  const reported = await assertEventually(() => mesh.problems()[0] ?? false);
  t.is(reported.port, port);
  t.is(reported.service, 'taken');
  t.regex(reported.error, /EADDRINUSE/);
  t.deepEqual(problems.at(-1), [reported], 'the agent is told');
  // Another service still gets its port: one taken port stops nothing else.
  const other = await freePort();
  await putService(store, 'other', other);
  await putEndpoint(store, 'other', 'm1', 'other@1.service', b.port);
  await assertEventually(async () => (await ask(other)) === 'b');
  await new Promise<void>((resolve) => squatter.close(() => resolve()));
  await assertEventually(async () => (await ask(port).catch(() => '')) === 'b', {
    message: 'served once free',
  });
  t.deepEqual(mesh.problems(), []);
  t.deepEqual(problems.at(-1), []);
});

test('a service that stops publishing closes its listener; its endpoints are no longer watched', async (t) => {
  const { store, mesh, directory } = await meshOn(t, 'mesh-unpublish');
  const port = await freePort();
  const b = await backend(t, 'b');
  await putEndpoint(store, 'gone', 'm1', 'gone@1.service', b.port);
  await putService(store, 'gone', port);
  await assertEventually(async () => (await ask(port)) === 'b');
  t.is(directory.watched, 1);
  await putService(store, 'gone', 0);
  await assertEventually(async () =>
    (await ask(port).catch((err: Error) => err.message)).includes('ECONNREFUSED'),
  );
  t.deepEqual(mesh.listening(), []);
  t.is(directory.watched, 0);
  // Published again, on another port: served there.
  const again = await freePort();
  await putService(store, 'gone', again);
  await assertEventually(async () => (await ask(again)) === 'b');
  await store.delete(store.keys.service('gone'));
  await assertEventually(async () =>
    (await ask(again).catch((err: Error) => err.message)).includes('ECONNREFUSED'),
  );
  t.pass();
});

/**
 * The routing mesh of one machine against a real etcd and real TCP backends, on both data
 * planes (the built-in proxy, and HAProxy as the agent runs it when haproxy is installed): it
 * listens on every published port, spreads connections over the serving endpoints, steps over
 * a dead one, follows endpoint and service changes, and survives a port it cannot have.
 */
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MeshDataPlane, MeshProblem } from '../../agent/mesh/data-plane.js';
import { HaproxyMesh } from '../../agent/mesh/haproxy-mesh.js';
import { RoutingMesh } from '../../agent/mesh/routing-mesh.js';
import { assertEventually, etcdForFile, freePort, uniquePrefix } from '../../testkit/index.js';
import {
  ask,
  backend,
  directoryOn,
  putEndpoint,
  putService,
  haproxyBinary,
  quiet,
  storeOn,
} from './services-kit.js';

const server = etcdForFile(test);

const haproxyBin = haproxyBinary();
/** The data planes under test: HAProxy only where it is installed (CI installs it). */
const planes =
  haproxyBin === undefined ? (['builtin'] as const) : (['builtin', 'haproxy'] as const);
type Plane = (typeof planes)[number];

async function meshOn(t: Parameters<typeof directoryOn>[0], label: string, plane: Plane) {
  const store = storeOn(t, server(), uniquePrefix(label));
  const directory = await directoryOn(t, store);
  const problems: MeshProblem[][] = [];
  const common = {
    listenAddress: '127.0.0.1',
    retryMs: 200,
    onProblems: (p: readonly MeshProblem[]) => problems.push([...p]),
  };
  let mesh: MeshDataPlane;
  if (plane === 'haproxy' && haproxyBin !== undefined) {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-mesh-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    mesh = new HaproxyMesh(directory, quiet, { ...common, binary: haproxyBin, dir });
  } else {
    mesh = new RoutingMesh(directory, quiet, common);
  }
  // Registered before start: a start that fails half way still stops its HAProxy.
  t.teardown(() => mesh.close());
  await mesh.start();
  return { store, directory, mesh, problems };
}

for (const plane of planes) {
  test(`${plane}: a published port spreads connections round robin over every serving endpoint`, async (t) => {
    const { store } = await meshOn(t, 'mesh-rr', plane);
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

  test(`${plane}: a dead endpoint's connect fails over to the next, so no connection is lost`, async (t) => {
    const { store, mesh } = await meshOn(t, 'mesh-dead', plane);
    const port = await freePort();
    const alive = await backend(t, 'alive');
    const dead = await backend(t, 'dead');
    await dead.close(); // its record stays: a crashed instance whose record has not gone yet
    await putEndpoint(store, 'api', 'm1', 'api@1.service', dead.port);
    await putEndpoint(store, 'api', 'm2', 'api@2.service', alive.port);
    await putService(store, 'api', port);
    await assertEventually(() => mesh.listening().some((l) => l.backends === 2));
    for (let i = 0; i < 20; i++) t.is(await ask(port), 'alive');
    if (mesh.capabilities.connectionStats) {
      const stats = mesh.listening()[0]?.stats;
      t.true((stats?.connectFailures ?? 0) >= 1, 'the dead endpoint was tried');
      t.is(stats?.refused, 0);
    }
  });

  test(`${plane}: an endpoint removed leaves the mesh within 1 s`, async (t) => {
    const { store } = await meshOn(t, 'mesh-removed', plane);
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

  test(`${plane}: a service with no serving endpoint closes connections at once; one added serves`, async (t) => {
    const { store } = await meshOn(t, 'mesh-empty', plane);
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

  test(`${plane}: only endpoints of the published Port= name take mesh traffic`, async (t) => {
    const { store } = await meshOn(t, 'mesh-portname', plane);
    const port = await freePort();
    const http = await backend(t, 'http');
    const admin = await backend(t, 'admin');
    await putEndpoint(store, 'two', 'm1', 'two@1.service', http.port, { portName: 'http' });
    await putEndpoint(store, 'two', 'm1', 'two@1.service', admin.port, { portName: 'admin' });
    await putService(store, 'two', port, 'http');
    await assertEventually(async () => (await ask(port)) === 'http');
    for (let i = 0; i < 6; i++) t.is(await ask(port), 'http');
  });

  test(`${plane}: a port already taken is reported, retried, and served once it is free`, async (t) => {
    const { store, mesh, problems } = await meshOn(t, 'mesh-taken', plane);
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

  test(`${plane}: a service that stops publishing closes its listener; its endpoints are no longer watched`, async (t) => {
    const { store, mesh, directory } = await meshOn(t, 'mesh-unpublish', plane);
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
}

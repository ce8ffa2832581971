/**
 * What only the HAProxy data plane has: the agent's HAProxy is reloaded for published ports,
 * never for endpoint changes; a backend that runs out of server slots grows; a HAProxy that
 * dies is restarted and serves again; one left by an earlier agent in the same directory is
 * stopped before a new one starts, so two never hold the same ports. Real etcd, real HAProxy.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HaproxyMesh } from '../../agent/mesh/haproxy-mesh.js';
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
const maybe = haproxyBin === undefined ? test.skip : test;

async function haproxyMesh(
  t: Parameters<typeof directoryOn>[0],
  label: string,
  opts: { initialSlots?: number; dir?: string } = {},
) {
  const store = storeOn(t, server(), uniquePrefix(label));
  const directory = await directoryOn(t, store);
  let dir = opts.dir;
  if (dir === undefined) {
    const made = await mkdtemp(join(tmpdir(), 'flotilla-mesh-'));
    t.teardown(() => rm(made, { recursive: true, force: true }));
    dir = made;
  }
  const mesh = new HaproxyMesh(directory, quiet, {
    binary: haproxyBin ?? 'haproxy',
    dir,
    listenAddress: '127.0.0.1',
    retryMs: 200,
    ...(opts.initialSlots === undefined ? {} : { initialSlots: opts.initialSlots }),
  });
  t.teardown(() => mesh.close());
  await mesh.start();
  return { store, mesh, dir };
}

maybe('endpoint changes reach HAProxy through its runtime API, with no reload', async (t) => {
  const { store, mesh, dir } = await haproxyMesh(t, 'hx-noreload');
  t.is((await stat(dir)).mode & 0o777, 0o700, 'its directory is private');
  const port = await freePort();
  const one = await backend(t, 'one');
  const two = await backend(t, 'two');
  const key = await putEndpoint(store, 'web', 'm1', 'web@1.service', one.port);
  await putService(store, 'web', port);
  await assertEventually(async () => (await ask(port)) === 'one');
  const reloads = mesh.reloads;
  await putEndpoint(store, 'web', 'm2', 'web@2.service', two.port);
  await assertEventually(async () => (await ask(port)) === 'two');
  await store.delete(key);
  await assertEventually(async () => {
    for (let i = 0; i < 4; i++) if ((await ask(port)) !== 'two') return false;
    return true;
  });
  t.is(mesh.reloads, reloads, 'no reload for three endpoint changes');
});

maybe(
  'a backend with more endpoints than slots grows by a reload and serves them all',
  async (t) => {
    const { store, mesh } = await haproxyMesh(t, 'hx-grow', { initialSlots: 2 });
    const port = await freePort();
    const names = ['a', 'b', 'c', 'd', 'e'];
    const backends = await Promise.all(names.map((n) => backend(t, n)));
    await putService(store, 'big', port);
    for (const [i, b] of backends.entries()) {
      await putEndpoint(store, 'big', `m${i}`, `big@${i}.service`, b.port);
    }
    await assertEventually(async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 10; i++) seen.add(await ask(port));
      return names.every((n) => seen.has(n));
    });
    await assertEventually(() => mesh.listening()[0]?.backends === 5, { message: '5 listed' });
    t.pass();
  },
);

maybe('a HAProxy that dies is restarted by the agent and serves again', async (t) => {
  const { store, mesh } = await haproxyMesh(t, 'hx-restart');
  const port = await freePort();
  const b = await backend(t, 'b');
  await putEndpoint(store, 'svc', 'm1', 'svc@1.service', b.port);
  await putService(store, 'svc', port);
  await assertEventually(async () => (await ask(port)) === 'b');
  const pid = mesh.haproxy.pid;
  if (pid === undefined) return t.fail('no haproxy pid');
  process.kill(pid, 'SIGKILL');
  // Its worker may serve on alone for a moment; the agent replaces both.
  await assertEventually(() => mesh.haproxy.restarts === 1, {
    timeoutMs: 15_000,
    message: 'restarted',
  });
  await assertEventually(async () => (await ask(port).catch(() => '')) === 'b', {
    timeoutMs: 15_000,
    message: 'served again after the restart',
  });
  t.not(mesh.haproxy.pid, pid);
  t.is(mesh.haproxy.restarts, 1);
});

maybe('a HAProxy left in the same directory by an earlier agent is stopped first', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-mesh-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const config = join(dir, 'haproxy.cfg');
  // What a killed agent leaves: a master and its worker bound to a published port.
  await writeFile(
    config,
    `global\n  stats socket ${join(dir, 'old.sock')} mode 600 level admin\n` +
      'defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n' +
      `frontend f\n  bind 127.0.0.1:${port}\n`,
  );
  const old = spawn(haproxyBin ?? 'haproxy', ['-W', '-S', join(dir, 'm.sock'), '-f', config], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => old.once('exit', () => resolve()));
  t.teardown(() => {
    old.kill('SIGKILL');
  });
  await assertEventually(async () => (await ask(port).catch(() => 'refused')) !== 'refused');
  const { store } = await haproxyMesh(t, 'hx-leftover', { dir });
  await exited;
  const b = await backend(t, 'new');
  await putEndpoint(store, 'svc', 'm1', 'svc@1.service', b.port);
  await putService(store, 'svc', port);
  // The port the old one held is the new one's, and only it answers.
  for (let i = 0; i < 3; i++) {
    await assertEventually(async () => (await ask(port).catch(() => '')) === 'new');
  }
  t.pass();
});

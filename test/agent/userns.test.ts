/**
 * `--userns-remap` on real runc containers: container ids 0..65535 are host ids FIRST..; what
 * a unit creates is owned by the mapped host uid, never 0; units without an image, image
 * units (shifted layers, named volumes) and secrets work remapped; a unit granted a host-path
 * volume runs in the host's user namespace; `off` keeps uid 0 as uid 0. Read from the host
 * (/proc, stat) so the assertions hold for what actually runs.
 */
import anyTest, { type TestFn } from 'ava';
import type { ExecutionContext } from 'ava';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseUnit } from '../../unit/index.js';
import { REGISTRY_DEFAULTS } from '../../registry/skopeo.js';
import { pushFixtures, startRegistry, type TestRegistry } from '../../testkit/registry.js';
import type { UsernsSetting } from '../../agent/runtime/userns.js';
import { freePort } from '../../testkit/index.js';
import { DRIVERS, managed, running, stateOf, unit, type Managed } from './harness.js';

const test: TestFn = DRIVERS.includes('runc') ? anyTest : (anyTest.skip as TestFn);
/** A range of its own, so the assertions do not depend on this host's /etc/subuid. */
const FIRST = 300_000;
const REMAP: UsernsSetting = { first: FIRST, count: 65536 };
const SLEEP = 'while true; do sleep 0.2; done';
let reg: TestRegistry | undefined;

test.before(async () => {
  if (!DRIVERS.includes('runc')) return;
  reg = await startRegistry();
  await pushFixtures(reg);
});
test.after.always(async () => {
  await reg?.stop();
});

function agent(t: ExecutionContext, usernsRemap: UsernsSetting): Promise<Managed> {
  const registry = { ...REGISTRY_DEFAULTS, insecureRegistries: [reg?.addr ?? ''] };
  return managed(t, { driver: 'runc', usernsRemap, images: { registry, maxBytes: 0 } });
}

function unitDir(m: Managed, name: string): string {
  return join(m.stateDir, m.machineId, 'units', name);
}

/** Waits for `file` in the unit's /tmp (as the host sees it) and returns its text. */
async function tmpFile(m: Managed, name: string, file: string): Promise<string> {
  const path = join(unitDir(m, name), 'tmp', file);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const text = await readFile(path, 'utf8').catch(() => undefined);
    if (text !== undefined && text.endsWith('\n')) return text;
    if (Date.now() > deadline) throw new Error(`${path} never written`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function mapLine(text: string): number[] {
  return text.trim().split(/\s+/).map(Number);
}

// made before uid appears: the test reads uid first, then looks at made.
const REPORT = `id -u > /tmp/uid.tmp; touch /tmp/made; mv /tmp/uid.tmp /tmp/uid; ${SLEEP}`;

test('remapped, a unit without an image is uid 0 inside, and what it creates is owned by the mapped host uid', async (t) => {
  const m = await agent(t, REMAP);
  await m.manager.start(unit('rootish.service', `/bin/sh -c '${REPORT}'`));
  await m.manager.start(unit('nobody.service', `/bin/sh -c '${REPORT}'`, { User: 'nobody' }));
  const { pid } = await running(m, 'rootish.service');
  t.is((await tmpFile(m, 'rootish.service', 'uid')).trim(), '0');
  t.deepEqual(mapLine(await readFile(`/proc/${pid}/uid_map`, 'utf8')), [0, FIRST, 65536]);
  t.deepEqual(mapLine(await readFile(`/proc/${pid}/gid_map`, 'utf8')), [0, FIRST, 65536]);
  const made = await stat(join(unitDir(m, 'rootish.service'), 'tmp', 'made'));
  t.is(made.uid, FIRST, 'root inside is the first mapped uid on the host');
  t.is(made.gid, FIRST);
  t.is((await readFile(`/proc/${pid}/status`, 'utf8')).match(/^Uid:\s+(\d+)/m)?.[1], `${FIRST}`);
  await running(m, 'nobody.service');
  t.is((await tmpFile(m, 'nobody.service', 'uid')).trim(), '65534');
  const nobody = await stat(join(unitDir(m, 'nobody.service'), 'tmp', 'made'));
  t.is(nobody.uid, FIRST + 65534);
  // No session keyring charged to the mapped uid: its quota (200 keys) would cap how many
  // containers a machine runs.
  const keyUsers = await readFile('/proc/key-users', 'utf8');
  t.notRegex(keyUsers, new RegExp(`^\\s*${FIRST}:`, 'm'));
  // Closed to every other host user: only the mapped root's group may traverse.
  const dir = await stat(unitDir(m, 'rootish.service'));
  t.is(dir.mode & 0o777, 0o710);
  t.is(dir.gid, FIRST);
});

test('remapped, /proc/self/uid_map shows the mapping in the main container, its hooks and runc exec, and /sys is the host one, read-only', async (t) => {
  const m = await agent(t, REMAP);
  const script = `cat /proc/self/uid_map > /tmp/map; (echo x > /sys/kernel/mm/ksm/run) 2> /tmp/sys || true; echo done >> /tmp/sys; ${SLEEP}`;
  await m.manager.start(
    unit('map.service', `/bin/sh -c '${script}'`, {
      // A hook container before the main one, and `runc exec` into the running one.
      ExecStartPre: `/bin/sh -c 'cat /proc/self/uid_map > /tmp/pre'`,
      ExecStartPost: `/bin/sh -c 'cat /proc/self/uid_map > /tmp/post'`,
    }),
  );
  await running(m, 'map.service');
  t.deepEqual(mapLine(await tmpFile(m, 'map.service', 'map')), [0, FIRST, 65536]);
  t.deepEqual(mapLine(await tmpFile(m, 'map.service', 'pre')), [0, FIRST, 65536]);
  t.deepEqual(mapLine(await tmpFile(m, 'map.service', 'post')), [0, FIRST, 65536]);
  t.regex(await tmpFile(m, 'map.service', 'sys'), /Read-only file system|Permission denied/);
});

test('with --userns-remap=off uid 0 in a container is uid 0 on the host, as before', async (t) => {
  const m = await agent(t, 'off');
  await m.manager.start(unit('host-ids.service', `/bin/sh -c '${REPORT}'`));
  const { pid } = await running(m, 'host-ids.service');
  t.is((await tmpFile(m, 'host-ids.service', 'uid')).trim(), '0');
  t.deepEqual(mapLine(await readFile(`/proc/${pid}/uid_map`, 'utf8')), [0, 0, 4294967295]);
  t.is((await stat(join(unitDir(m, 'host-ids.service'), 'tmp', 'made'))).uid, 0);
});

test('remapped, a unit reads its secret at /run/secrets/NAME, owned by its user inside', async (t) => {
  const registry = { ...REGISTRY_DEFAULTS, insecureRegistries: [] };
  const m = await managed(t, {
    driver: 'runc',
    usernsRemap: REMAP,
    images: { registry, maxBytes: 0 },
    secrets: (names) => Promise.resolve(new Map(names.map((n) => [n, Buffer.from(`v-${n}`)]))),
  });
  const script = `cat /run/secrets/db-pass > /tmp/got.tmp; stat -c %u /run/secrets/db-pass >> /tmp/got.tmp; mv /tmp/got.tmp /tmp/got; ${SLEEP}`;
  await m.manager.start(
    unit('reads-secret.service', `/bin/sh -c '${script}'`, {
      Secret: 'db-pass',
      User: 'nobody',
    }),
  );
  await running(m, 'reads-secret.service');
  t.is(await tmpFile(m, 'reads-secret.service', 'got'), 'v-db-pass65534\n');
});

test('remapped, an image unit runs on shifted layers, writes its root and a named volume as the mapped uid', async (t) => {
  const m = await agent(t, REMAP);
  // The whiteout fixture: a later layer deletes /only-in-image, which must stay hidden.
  // Each report is written whole (temporary file, then mv): a reader must never see it half made.
  const script = `id -u > /data/uid.tmp; mv /data/uid.tmp /data/uid; touch /written-root /data/made; ls /only-in-image > /data/ls.tmp 2>&1; mv /data/ls.tmp /data/ls; sleep 1000`;
  await m.manager.start(
    parseUnit(
      'img.service',
      [
        '[Container]',
        `Image=${reg?.addr ?? ''}/fixtures/whiteout:1`,
        'Volume=store:/data',
        `Exec=/bin/sh -c '${script}'`,
      ].join('\n'),
    ),
  );
  const { pid } = await running(m, 'img.service', 60_000);
  t.deepEqual(mapLine(await readFile(`/proc/${pid}/uid_map`, 'utf8')), [0, FIRST, 65536]);
  const volume = join(m.stateDir, m.machineId, 'volumes', 'store');
  const uid = await waitFor(() => readFile(join(volume, 'uid'), 'utf8'));
  t.is(uid.trim(), '0');
  t.is((await waitFor(() => stat(join(volume, 'made')))).uid, FIRST);
  t.regex(await waitFor(() => readFile(join(volume, 'ls'), 'utf8')), /No such file/);
  const upper = join(unitDir(m, 'img.service'), 'image', 'upper');
  t.is((await waitFor(() => stat(join(upper, 'written-root')))).uid, FIRST);
  const images = join(m.stateDir, m.machineId, 'images');
  const shifted = await stat(join(images, `layers-${FIRST}-${FIRST}-65536`));
  t.true(shifted.isDirectory(), 'layers unpacked for the mapping, apart from unshifted ones');
});

test('remapped, an image unit granted a host-path volume runs in the host user namespace', async (t) => {
  const m = await agent(t, REMAP);
  const host = await mkdtemp(join(tmpdir(), 'flotilla-userns-host-'));
  t.teardown(() => rm(host, { recursive: true, force: true }));
  await m.manager.start(
    parseUnit(
      'hostvol.service',
      [
        '[Container]',
        `Image=${reg?.addr ?? ''}/fixtures/base:1`,
        `Volume=${host}:/host`,
        `Exec=/bin/sh -c 'touch /host/made; sleep 1000'`,
      ].join('\n'),
    ),
  );
  const { pid } = await running(m, 'hostvol.service', 60_000);
  t.deepEqual(mapLine(await readFile(`/proc/${pid}/uid_map`, 'utf8')), [0, 0, 4294967295]);
  t.is((await waitFor(() => stat(join(host, 'made')))).uid, 0);
});

test('remapped, a User= beyond the mapped ids fails saying what to do', async (t) => {
  const m = await agent(t, REMAP);
  await m.manager.start(unit('far.service', `/bin/sh -c '${SLEEP}'`, { User: '70000' }));
  const state = await stateOf(m, 'far.service', (s) => s.activeState === 'failed', 'failed');
  t.regex(
    state.message,
    /outside the container's user namespace \(0\.\.65535\).*--userns-remap=off/,
  );
});

test('remapped on the host network, a port below 1024 is refused even with CAP_NET_BIND_SERVICE, and the log says why; 1024 and up bind', async (t) => {
  const m = await agent(t, REMAP);
  const high = await freePort();
  const script = `(busybox nc -l -p 80 2>&1 | head -c 300 > /tmp/low) & busybox nc -l -p ${high} & sleep 1000`;
  await m.manager.start(
    unit('web.service', `/bin/sh -c '${script}'`, {
      AmbientCapabilities: 'CAP_NET_BIND_SERVICE',
    }),
  );
  await running(m, 'web.service');
  t.regex(
    await waitFor(() =>
      readFile(join(unitDir(m, 'web.service'), 'tmp', 'low'), 'utf8').then(nonEmpty),
    ),
    /Permission denied/,
  );
  // Accepted on the high port: the container's listener is on the host's network.
  await waitFor(
    () =>
      new Promise<void>((resolve, reject) => {
        const socket = connect(high, '127.0.0.1', () => {
          socket.destroy();
          resolve();
        });
        socket.once('error', reject);
      }),
  );
  const log = await readFile(join(m.stateDir, m.machineId, 'logs', 'web.service.log'), 'utf8');
  t.regex(
    log,
    /flotilla: CAP_NET_BIND_SERVICE has no effect on the host's network .*--userns-remap=off/,
  );
});

function nonEmpty(text: string): string {
  if (text === '') throw new Error('empty');
  return text;
}

async function waitFor<T>(read: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await read();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

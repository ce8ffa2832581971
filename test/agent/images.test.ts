/**
 * Image units on a real runc agent runtime, from a real registry (Debian's docker-registry on
 * 127.0.0.1, fixtures built offline from busybox-static): what runs is the image, layers are
 * shared, whiteouts hide, Pull=always follows a retag, failures retry until the registry
 * returns, and the store collects what no unit uses. Serial: one test stops the registry.
 */
import anyTest, { type TestFn } from 'ava';
import { execFile } from 'node:child_process';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AgentMetrics } from '../../agent/metrics.js';
import { mountsUnder } from '../../agent/runtime/mounts.js';
import { ImageStore, type PullProgress } from '../../agent/images/store.js';
import { progressText } from '../../agent/units/supervisor/image.js';
import { parseUnit } from '../../unit/index.js';
import { pushImage } from '../../deploy/images/build.js';
import {
  authFile,
  pushFixtures,
  pushMultiPlatform,
  startRegistry,
  type TestRegistry,
} from '../../testkit/registry.js';
import { REGISTRY_DEFAULTS } from '../../registry/skopeo.js';
import { withPortEnvironment } from '../../agent/sync/unit-ports.js';
import type { ExecutionContext } from 'ava';
import {
  DRIVERS,
  killUnits,
  managed as managedAgent,
  running,
  stateOf,
  type Managed,
  type ManagedOptions,
} from './harness.js';

const test: TestFn = DRIVERS.includes('runc') ? anyTest : (anyTest.skip as TestFn);
const run = promisify(execFile);
let reg: TestRegistry;

test.before(async () => {
  if (!DRIVERS.includes('runc')) return;
  reg = await startRegistry();
  await pushFixtures(reg);
});
test.after.always(async () => {
  await reg?.stop();
});

/** A runc agent runtime that reaches the test registry over plain HTTP. */
function managed(
  t: ExecutionContext,
  opts: ManagedOptions & { maxBytes?: number },
): Promise<Managed> {
  const { maxBytes = 0, ...rest } = opts;
  const registry = { ...REGISTRY_DEFAULTS, insecureRegistries: [reg.addr] };
  return managedAgent(t, { ...rest, images: { registry, maxBytes } });
}

function imageUnit(
  name: string,
  image: string,
  extra: readonly string[] = [],
): ReturnType<typeof parseUnit> {
  return parseUnit(name, ['[Container]', `Image=${image}`, ...extra].join('\n'));
}

async function logOf(m: Managed, name: string): Promise<string> {
  return readFile(join(m.stateDir, m.machineId, 'logs', `${name}.log`), 'utf8').catch(() => '');
}

async function waitForLog(m: Managed, name: string, pattern: RegExp): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const text = await logOf(m, name);
    if (pattern.test(text)) return text;
    if (Date.now() > deadline)
      throw new Error(`${name}: log never matched ${pattern}: ${text.slice(-500)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Bytes under `dir` on its own filesystem (overlay mounts under it are not counted). */
async function diskBytes(dir: string): Promise<number> {
  const { stdout } = await run('du', ['-sxb', dir]);
  return Number(stdout.split('\t')[0]);
}

test.serial(
  'a unit runs its image: the file only the image holds is there, the state shows the digest, pulling is visible',
  async (t) => {
    const m = await managed(t, { driver: 'runc' });
    const name = 'from-image.service';
    await m.manager.start(
      imageUnit(name, `${reg.addr}/fixtures/app:1`, [
        'Exec=-c "cat /only-in-image; echo FROM_IMAGE=$$FROM_IMAGE; sleep 1000"',
        'Entrypoint=/bin/sh',
      ]),
    );
    const state = await running(m, name);
    t.regex(state.image, new RegExp(`^${reg.addr}/fixtures/app@sha256:[0-9a-f]{64}$`));
    // The echo after the cat: waiting for the first line alone raced the second (CI, once).
    const log = await waitForLog(m, name, /FROM_IMAGE=/);
    t.regex(log, /only in the image/);
    t.regex(log, /FROM_IMAGE=yes/);
    await t.throwsAsync(access('/only-in-image'));
    t.true(
      m.states.some(
        (s) => s.name === name && s.subState === 'pulling' && /pulling app:1/.test(s.message),
      ),
    );
  },
);

test.serial(
  "the image's own Cmd runs without Exec=, and a second unit of the image costs under 1 MB of disk",
  async (t) => {
    const m = await managed(t, { driver: 'runc' });
    await m.manager.start(imageUnit('first.service', `${reg.addr}/fixtures/base:1`));
    await running(m, 'first.service');
    await waitForLog(m, 'first.service', /base/);
    const before = await diskBytes(m.stateDir);
    await m.manager.start(imageUnit('second.service', `${reg.addr}/fixtures/base:1`));
    await running(m, 'second.service');
    await waitForLog(m, 'second.service', /base/);
    const cost = (await diskBytes(m.stateDir)) - before;
    t.log(`disk cost of the second unit: ${cost} bytes`);
    t.true(cost < 1024 * 1024, `${cost} bytes`);
    const images = await m.manager.images?.images();
    t.is(images?.length, 1);
  },
);

test.serial(
  'an image unit gets its placement ports as $PORT and $FLOTILLA_PORT_<NAME>, over [Container] Environment=',
  async (t) => {
    const m = await managed(t, { driver: 'runc' });
    const name = 'ported-image.service';
    const def = imageUnit(name, `${reg.addr}/fixtures/app:1`, [
      'Exec=-c "echo PORT=$$PORT HTTP=$$FLOTILLA_PORT_HTTP; sleep 1000"',
      'Entrypoint=/bin/sh',
      'Environment=PORT=1',
      '[X-Service]',
      'Port=http',
    ]);
    await m.manager.start(
      withPortEnvironment(def, [{ name: 'http', number: 24242, static: false }]),
    );
    await running(m, name);
    t.regex(await waitForLog(m, name, /PORT=/), /PORT=24242 HTTP=24242/);
  },
);

test.serial('whiteouts hide the files a later layer deleted', async (t) => {
  const m = await managed(t, { driver: 'runc' });
  const name = 'whiteout.service';
  await m.manager.start(
    imageUnit(name, `${reg.addr}/fixtures/whiteout:1`, [
      'Exec=/bin/sh -c "test -e /only-in-image && echo VISIBLE; test -e /etc/motd && echo MOTD; test -e /etc/passwd && echo PASSWD; echo checked; sleep 1000"',
    ]),
  );
  const log = await waitForLog(m, name, /checked/);
  t.notRegex(log, /VISIBLE|MOTD/);
  t.regex(log, /PASSWD/);
});

test.serial('Pull=always sees a retagged image at the next start', async (t) => {
  const m = await managed(t, { driver: 'runc' });
  await pushImage(reg.layout, 'base', `${reg.addr}/fixtures/moving:1`, true);
  const def = imageUnit('moving.service', `${reg.addr}/fixtures/moving:1`, [
    'Pull=always',
    'Exec=/bin/sh -c "test -e /only-in-image && echo NEW || echo OLD; sleep 1000"',
  ]);
  await m.manager.start(def);
  const first = await running(m, 'moving.service');
  await waitForLog(m, 'moving.service', /OLD/);
  await pushImage(reg.layout, 'app', `${reg.addr}/fixtures/moving:1`, true);
  await m.manager.stop('moving.service');
  await m.manager.start(def);
  const second = await running(m, 'moving.service');
  await waitForLog(m, 'moving.service', /NEW/);
  t.not(first.image, second.image);
});

test.serial(
  'with the registry down the unit fails saying so, retries, and runs once it is back; other units run on',
  async (t) => {
    const m = await managed(t, { driver: 'runc', timings: { restartCapMs: 1_000 } });
    await m.manager.start(parseUnit('bystander.service', '[Service]\nExecStart=/bin/sleep 1000\n'));
    const bystander = await running(m, 'bystander.service');
    await reg.pause();
    try {
      await m.manager.start(imageUnit('patient.service', `${reg.addr}/fixtures/app:1`));
      const failed = await stateOf(
        m,
        'patient.service',
        (s) => s.activeState === 'failed',
        'failed',
        60_000,
      );
      t.regex(failed.message, /cannot be reached.*retrying in/);
      const still = m.manager.get('bystander.service');
      t.is(still?.activeState, 'active');
      t.is(still?.pid, bystander.pid);
    } finally {
      await reg.resume();
    }
    await running(m, 'patient.service', 60_000);
  },
);

test.serial('a digest the registry does not have fails the unit with not found', async (t) => {
  const m = await managed(t, { driver: 'runc', timings: { restartCapMs: 1_000 } });
  const wrong = `${reg.addr}/fixtures/app@sha256:${'0'.repeat(64)}`;
  await m.manager.start(imageUnit('wrong.service', wrong));
  const failed = await stateOf(
    m,
    'wrong.service',
    (s) => s.activeState === 'failed',
    'failed',
    60_000,
  );
  t.regex(failed.message, /not found/);
});

test.serial('garbage collection removes an unused image and keeps the one in use', async (t) => {
  const m = await managed(t, { driver: 'runc', maxBytes: 1 });
  await m.manager.start(imageUnit('keep.service', `${reg.addr}/fixtures/app:1`));
  await m.manager.start(imageUnit('drop.service', `${reg.addr}/fixtures/whiteout:1`));
  await running(m, 'keep.service');
  await running(m, 'drop.service');
  const store = m.manager.images;
  if (store === undefined) return t.fail('no image store');
  t.is((await store.images()).length, 2);
  await m.manager.stop('drop.service');
  await store.collect();
  const left = await store.images();
  t.deepEqual(
    left.map((i) => i.reference),
    [`${reg.addr}/fixtures/app:1`],
  );
  // The kept image's layers are all still there, and its unit still runs.
  for (const layer of left[0]?.layers ?? []) await access(join(store.layersDir, layer));
  t.is(m.manager.get('keep.service')?.activeState, 'active');
});

test.serial('a restarted agent adopts a running image unit without restarting it', async (t) => {
  const first = await managed(t, { driver: 'runc' });
  await first.manager.start(
    imageUnit('adopted.service', `${reg.addr}/fixtures/app:1`, [
      'Exec=/bin/sh -c "echo up; sleep 1000"',
    ]),
  );
  const before = await running(first, 'adopted.service');
  await first.manager.close();
  const second = await managed(t, {
    driver: 'runc',
    stateDir: first.stateDir,
    machineId: first.machineId,
  });
  const adopted = await second.manager.adopt();
  t.deepEqual(
    adopted.map((a) => [a.name, a.pid]),
    [['adopted.service', before.pid]],
  );
  const after = await running(second, 'adopted.service');
  t.is(after.pid, before.pid);
  t.is(after.image, before.image);
  // Stopping it unmounts its root and removes its directory.
  await second.manager.stop('adopted.service');
  t.deepEqual(await mountsUnder(first.stateDir), []);
});

test.serial(
  'units started together on one image wait for one pull, each saying it is pulling',
  async (t) => {
    const m = await managed(t, { driver: 'runc' });
    const names = [
      'together@1.service',
      'together@2.service',
      'together@3.service',
      'together@4.service',
    ];
    await Promise.all(
      names.map((n) => m.manager.start(imageUnit(n, `${reg.addr}/fixtures/whiteout:1`))),
    );
    for (const n of names) await running(m, n);
    t.is(m.manager.images?.stats.pulls, 1);
    for (const n of names) {
      t.true(
        m.states.some((s) => s.name === n && s.subState === 'pulling'),
        `${n} reported pulling`,
      );
    }
    // What Prometheus would scrape: one pull, and a store that holds the image.
    const metrics = new AgentMetrics();
    const images = m.manager.images;
    if (images === undefined) return t.fail('a runc agent has an image store');
    metrics.attach({ units: () => [], logPath: (n: string) => n, images });
    const text = await metrics.registry.metrics();
    t.regex(text, /^flotilla_agent_image_pulls_total 1$/m);
    const bytes = Number(/^flotilla_agent_image_store_bytes (\d+)$/m.exec(text)?.[1]);
    t.true(bytes > 0 && bytes === (await images.usage()), `store bytes ${bytes}`);
  },
);

test.serial(
  'a registry that needs a login: refused without --registry-auth-file, pulled with it',
  async (t) => {
    const login = { user: 'flotilla', password: 'let-me-in' };
    const locked = await startRegistry(login);
    t.teardown(() => locked.stop());
    await pushFixtures(locked, login);
    const image = `${locked.addr}/fixtures/base:1`;
    const registry = { ...REGISTRY_DEFAULTS, insecureRegistries: [locked.addr] };

    const without = await managedAgent(t, {
      driver: 'runc',
      timings: { restartCapMs: 1_000 },
      images: { registry, maxBytes: 0 },
    });
    await without.manager.start(imageUnit('locked.service', image));
    const failed = await stateOf(
      without,
      'locked.service',
      (s) => s.activeState === 'failed',
      'failed',
    );
    t.regex(failed.message, /refused the credentials/);

    const withAuth = await managedAgent(t, {
      driver: 'runc',
      images: { registry: { ...registry, authFile: await authFile(locked, login) }, maxBytes: 0 },
    });
    await withAuth.manager.start(imageUnit('locked.service', image));
    await running(withAuth, 'locked.service');
  },
);

test.serial('a full disk fails the pull saying so', async (t) => {
  const stateDir = await mkdtemp(join(tmpdir(), 'flotilla-full-'));
  await run('mount', ['-t', 'tmpfs', '-o', 'size=640k', 'flotilla-full', stateDir]);
  t.teardown(async () => {
    await run('umount', ['--lazy', stateDir]).catch(() => undefined);
    await rm(stateDir, { recursive: true, force: true });
  });
  const m = await managed(t, { driver: 'runc', stateDir, timings: { restartCapMs: 1_000 } });
  t.teardown(() => killUnits(stateDir, m.machineId));
  await m.manager.start(imageUnit('cramped.service', `${reg.addr}/fixtures/app:1`));
  const failed = await stateOf(m, 'cramped.service', (s) => s.activeState === 'failed', 'failed');
  t.regex(failed.message, /disk is full/);
  await m.manager.stop('cramped.service');
});

test.serial("a manifest list runs this machine's platform", async (t) => {
  await pushMultiPlatform(reg);
  const m = await managed(t, { driver: 'runc' });
  await m.manager.start(
    imageUnit('multi.service', `${reg.addr}/fixtures/multi:1`, [
      'Exec=/bin/sh -c "test -e /only-in-image && echo HOST-PLATFORM || echo OTHER; sleep 1000"',
    ]),
  );
  await running(m, 'multi.service');
  t.regex(await waitForLog(m, 'multi.service', /HOST-PLATFORM|OTHER/), /HOST-PLATFORM/);
});

test.serial("a pull reports its progress in bytes, up to the manifest's total", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-store-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const store = new ImageStore({
    dir,
    registry: { ...REGISTRY_DEFAULTS, insecureRegistries: [reg.addr] },
    maxBytes: 0,
    progressMs: 5,
  });
  const seen: PullProgress[] = [];
  const image = await store.ensure(`${reg.addr}/fixtures/whiteout:1`, 'missing', (p) =>
    seen.push(p),
  );
  t.is(image.layers.length, 3);
  const last = seen.at(-1);
  t.log(seen.map((p) => progressText(p)).join(' | '));
  t.true(
    seen.some((p) => p.totalBytes > 1_000_000),
    "the total is the layers' size",
  );
  t.regex(
    progressText({ image: 'web:1.4', doneBytes: 12 * 1024 ** 2, totalBytes: 40 * 1024 ** 2 }),
    /^pulling web:1\.4, 12 MiB\/40 MiB$/,
  );
  t.true(last === undefined || last.doneBytes <= last.totalBytes || last.totalBytes === 0);
  const done = seen.map((p) => p.doneBytes);
  t.deepEqual(
    done,
    [...done].sort((a, b) => a - b),
    'progress never goes back',
  );
});

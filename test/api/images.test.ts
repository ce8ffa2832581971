/**
 * Pinning at submit, against a real registry and a real etcd: a tag is stored with the
 * digest the registry gives, status shows it, a tag or digest the registry lacks is refused
 * with its reason and writes nothing, Pull=never is taken as given.
 */
import { status } from '@grpc/grpc-js';
import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { pushImage } from '../../deploy/images/build.js';
import type { RolloutStatus } from '../../proto/flotilla/v1/units.js';
import { REGISTRY_DEFAULTS } from '../../registry/skopeo.js';
import { etcdForFile } from '../../testkit/index.js';
import {
  authFile,
  pushFixtures,
  pushMultiPlatform,
  startRegistry,
  type TestRegistry,
} from '../../testkit/registry.js';
import { failure, fingerprint, rpc, startApi, type Api } from './api-kit.js';

const server = etcdForFile(test);
const run = promisify(execFile);
let reg: TestRegistry;

test.before(async () => {
  reg = await startRegistry();
  await pushFixtures(reg);
});
test.after.always(async () => {
  await reg?.stop();
});

const registry = (): typeof REGISTRY_DEFAULTS => ({
  ...REGISTRY_DEFAULTS,
  insecureRegistries: [reg.addr],
});

function file(image: string, extra = ''): string {
  return `[Unit]\nDescription=pinned\n\n[Container]\nImage=${image}\n${extra}`;
}

/** UpdateUnit with the file's or the defaults' options. */
function update(api: Api, name: string, contents: string): Promise<RolloutStatus> {
  return rpc(api.units.updateUnit.bind(api.units), {
    file: { name, contents },
    parallelism: 0,
    delayMs: -1n,
    monitorMs: -1n,
    failureAction: '',
    order: '',
    force: false,
    healthyDeadlineMs: 0n,
  });
}

async function digestOf(ref: string): Promise<string> {
  const { stdout } = await run(
    'skopeo',
    ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`],
    {
      encoding: 'buffer',
    },
  );
  return `sha256:${createHash('sha256').update(stdout).digest('hex')}`;
}

test.serial(
  'a submitted tag is stored pinned to its digest, and status shows it for every instance',
  async (t) => {
    const api = await startApi(t, server(), { registry: registry() });
    const image = `${reg.addr}/fixtures/app:1`;
    const digest = await digestOf(image);
    const res = await api.submit({ files: [{ name: 'pinned@.service', contents: file(image) }] });
    t.deepEqual(res.created, ['pinned@.service']);
    const template = await api.get('pinned@.service');
    t.is(template.image, `${image}@${digest}`);
    t.regex(template.unit?.file ?? '', new RegExp(`^Image=${image}@${digest}$`, 'm'));
    await api.setDesired(['pinned@1.service', 'pinned@2.service'], 'launched', true);
    for (const name of ['pinned@1.service', 'pinned@2.service']) {
      t.is((await api.get(name)).image, `${image}@${digest}`);
    }
    const listed = await api.list({ nameGlob: 'pinned@*' });
    t.true(listed.units.every((u) => u.image === `${image}@${digest}`));
    // The tag still names that digest: submitting it again changes nothing.
    const again = await api.submit({ files: [{ name: 'pinned@.service', contents: file(image) }] });
    t.deepEqual(again.unchanged, ['pinned@.service']);
  },
);

test.serial('an update re-resolves the tag: a retagged image is a different unit', async (t) => {
  const api = await startApi(t, server(), { registry: registry() });
  const image = `${reg.addr}/fixtures/retag:1`;
  await pushImage(reg.layout, 'base', image, true);
  await api.submit({ files: [{ name: 'retag.service', contents: file(image) }] });
  const before = (await api.get('retag.service')).image;
  await pushImage(reg.layout, 'app', image, true);
  const clash = await failure(
    api.submit({ files: [{ name: 'retag.service', contents: file(image) }] }),
  );
  t.is(clash.code, status.ALREADY_EXISTS);
  const res = await api.submit({
    files: [{ name: 'retag.service', contents: file(image) }],
    replace: true,
  });
  t.deepEqual(res.updated, ['retag.service']);
  const after = (await api.get('retag.service')).image;
  t.not(after, before);
  t.is(after, `${image}@${await digestOf(image)}`);
});

test.serial(
  "a tag or digest the registry lacks is refused with the registry's reason and the line; nothing is written",
  async (t) => {
    const api = await startApi(t, server(), { registry: registry() });
    const before = await fingerprint(api.store);
    const missingTag = await failure(
      api.submit({
        files: [
          { name: 'ok.service', contents: file(`${reg.addr}/fixtures/app:1`) },
          { name: 'missing.service', contents: file(`${reg.addr}/fixtures/app:nope`) },
        ],
      }),
    );
    t.is(missingTag.code, status.INVALID_ARGUMENT);
    t.regex(missingTag.details, /missing\.service:5: Image=.*fixtures\/app:nope: not found/);
    const wrongDigest = await failure(
      api.submit({
        files: [
          {
            name: 'wrong.service',
            contents: file(`${reg.addr}/fixtures/app@sha256:${'0'.repeat(64)}`),
          },
        ],
      }),
    );
    t.is(wrongDigest.code, status.INVALID_ARGUMENT);
    t.regex(wrongDigest.details, /wrong\.service:5: .*not found/);
    t.deepEqual(await fingerprint(api.store), before);
  },
);

test.serial('Pull=never is accepted as given, without asking the registry', async (t) => {
  const api = await startApi(t, server(), { registry: registry() });
  const image = `${reg.addr}/fixtures/absent@sha256:${'0'.repeat(64)}`;
  await api.submit({ files: [{ name: 'never.service', contents: file(image, 'Pull=never\n') }] });
  t.is((await api.get('never.service')).image, image);
});

test.serial(
  'with the registry unreachable a submit is UNAVAILABLE and writes nothing',
  async (t) => {
    const api = await startApi(t, server(), { registry: registry() });
    const before = await fingerprint(api.store);
    await reg.pause();
    try {
      const err = await failure(
        api.submit({
          files: [{ name: 'down.service', contents: file(`${reg.addr}/fixtures/app:1`) }],
        }),
      );
      t.is(err.code, status.UNAVAILABLE);
      t.regex(err.details, /down\.service:5: .*cannot be reached/);
    } finally {
      await reg.resume();
    }
    t.deepEqual(await fingerprint(api.store), before);
  },
);

test.serial(
  'a registry that needs a login: a submit is refused without credentials and pinned with them',
  async (t) => {
    const login = { user: 'flotilla', password: 'let-me-in' };
    const locked = await startRegistry(login);
    t.teardown(() => locked.stop());
    await pushFixtures(locked, login);
    const image = `${locked.addr}/fixtures/app:1`;
    const insecure = { ...REGISTRY_DEFAULTS, insecureRegistries: [locked.addr] };
    const without = await startApi(t, server(), { registry: insecure });
    const err = await failure(
      without.submit({ files: [{ name: 'locked.service', contents: file(image) }] }),
    );
    t.is(err.code, status.INVALID_ARGUMENT);
    t.regex(err.details, /locked\.service:5: .*refused the credentials/);
    const withAuth = await startApi(t, server(), {
      registry: { ...insecure, authFile: await authFile(locked, login) },
      label: 'with auth',
    });
    await withAuth.submit({ files: [{ name: 'locked.service', contents: file(image) }] });
    t.regex((await withAuth.get('locked.service')).image, /@sha256:[0-9a-f]{64}$/);
  },
);

test.serial(
  "a manifest list is pinned to the list's own digest (each machine picks its platform)",
  async (t) => {
    await pushMultiPlatform(reg);
    const api = await startApi(t, server(), { registry: registry() });
    const image = `${reg.addr}/fixtures/multi:1`;
    await api.submit({ files: [{ name: 'multi.service', contents: file(image) }] });
    t.is((await api.get('multi.service')).image, `${image}@${await digestOf(image)}`);
  },
);

test.serial(
  'an update pins the new tag as submit does: the stored template and the rollout carry the digest',
  async (t) => {
    const api = await startApi(t, server(), { registry: registry() });
    await api.submit({
      files: [{ name: 'upd@.service', contents: file(`${reg.addr}/fixtures/app:1`) }],
    });
    await api.setDesired(['upd@1.service'], 'launched', true);
    const image = `${reg.addr}/fixtures/base:1`;
    const res = await update(api, 'upd@.service', file(image, 'Environment=V=2\n'));
    const pinned = `${image}@${await digestOf(image)}`;
    t.regex(res.rollout?.toFile ?? '', new RegExp(`^Image=${pinned}$`, 'm'));
    const template = await api.get('upd@.service');
    t.is(template.image, pinned);
    t.regex(template.unit?.file ?? '', new RegExp(`^Image=${pinned}$`, 'm'));
  },
);

test.serial(
  'an update naming a tag the registry lacks is refused like a submit and changes nothing',
  async (t) => {
    const api = await startApi(t, server(), { registry: registry() });
    await api.submit({
      files: [{ name: 'keep@.service', contents: file(`${reg.addr}/fixtures/app:1`) }],
    });
    await api.setDesired(['keep@1.service'], 'launched', true);
    const before = await fingerprint(api.store);
    const err = await failure(update(api, 'keep@.service', file(`${reg.addr}/fixtures/app:nope`)));
    t.is(err.code, status.INVALID_ARGUMENT);
    t.regex(err.details, /keep@\.service:5: Image=.*fixtures\/app:nope: not found/);
    t.deepEqual(await fingerprint(api.store), before, 'no rollout, no new template file');
  },
);

test.serial(
  'plan checks images as submit does: an unknown tag is refused, an unreachable registry unavailable',
  async (t) => {
    const api = await startApi(t, server(), { registry: registry() });
    const ok = await api.plan({
      files: [{ name: 'img.service', contents: file(`${reg.addr}/fixtures/app:1`) }],
    });
    t.deepEqual(
      ok.units.map((u) => u.name),
      ['img.service'],
    );
    const missing = await failure(
      api.plan({
        files: [{ name: 'img.service', contents: file(`${reg.addr}/fixtures/app:nope`) }],
      }),
    );
    t.is(missing.code, status.INVALID_ARGUMENT);
    t.regex(missing.details, /img\.service:5: Image=.*fixtures\/app:nope: not found/);
    await reg.pause();
    try {
      const down = await failure(
        api.plan({
          files: [{ name: 'img.service', contents: file(`${reg.addr}/fixtures/app:1`) }],
        }),
      );
      t.is(down.code, status.UNAVAILABLE);
      t.regex(down.details, /img\.service:5: .*cannot be reached/);
    } finally {
      await reg.resume();
    }
  },
);

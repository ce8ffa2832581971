/**
 * What `--userns-remap` settles on from the host's files (runtime/userns.ts), which units keep
 * the host's user namespace, and the owner shift of unpacked layers (images/shift.ts).
 */
import test from 'ava';
import { chmod, link, lstat, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { shiftOwners } from '../../agent/images/shift.js';
import {
  hostUsernsReason,
  parseUsernsRemap,
  resolveUserns,
  stateDirProblem,
  type UsernsHostFiles,
} from '../../agent/runtime/userns.js';
import { parseUnit } from '../../unit/index.js';
import { createDriver } from '../../agent/runtime/index.js';
import { mkdirPrivate } from '../../agent/runtime/private-files.js';
import { DRIVERS } from './harness.js';

async function hostFiles(files: Partial<Record<keyof UsernsHostFiles, string>>) {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-userns-'));
  const paths = {} as Record<keyof UsernsHostFiles, string>;
  const defaults = { maxUserNamespaces: '15000\n', subuid: '', subgid: '', passwd: '', group: '' };
  for (const [key, text] of Object.entries({ ...defaults, ...files })) {
    const path = join(dir, key);
    await writeFile(path, text);
    paths[key as keyof UsernsHostFiles] = path;
  }
  return { paths, remove: () => rm(dir, { recursive: true, force: true }) };
}

test('--userns-remap accepts auto, off and FIRST:COUNT, and refuses ranges too small or at host root', (t) => {
  t.is(parseUsernsRemap('auto'), 'auto');
  t.is(parseUsernsRemap('off'), 'off');
  t.deepEqual(parseUsernsRemap('200000:65536'), { first: 200000, count: 65536 });
  for (const bad of ['0:65536', '100000:1000', '100000', 'on', '4294967000:65536']) {
    t.throws(() => parseUsernsRemap(bad), { message: /expected auto, off or FIRST:COUNT/ }, bad);
  }
});

test('auto takes the flotilla user range from /etc/subuid and /etc/subgid', async (t) => {
  const h = await hostFiles({
    subuid: 'alice:100000:65536\nflotilla:500000:65536\n',
    subgid: 'alice:100000:65536\nflotilla:600000:131072\n',
  });
  t.teardown(h.remove);
  const choice = await resolveUserns('auto', h.paths);
  t.deepEqual(choice.map, { uid: 500000, gid: 600000, size: 65536 });
});

test('auto without a flotilla entry takes 100000:65536 when free, and runs without remap when a user has it', async (t) => {
  const free = await hostFiles({ passwd: 'root:x:0:0::/root:/bin/sh\n' });
  t.teardown(free.remove);
  t.deepEqual((await resolveUserns('auto', free.paths)).map, {
    uid: 100000,
    gid: 100000,
    size: 65536,
  });
  const taken = await hostFiles({ subuid: 'alice:100000:65536\n' });
  t.teardown(taken.remove);
  const choice = await resolveUserns('auto', taken.paths);
  t.is(choice.map, undefined);
  t.regex(choice.reason, /overlaps alice's subordinate range 100000:65536.*usermod --add-subuids/);
});

test('auto is off where the kernel allows no user namespaces; an explicit range there is an error', async (t) => {
  const h = await hostFiles({ maxUserNamespaces: '0\n' });
  t.teardown(h.remove);
  t.is((await resolveUserns('auto', h.paths)).map, undefined);
  await t.throwsAsync(resolveUserns({ first: 100000, count: 65536 }, h.paths), {
    message: /allows no user namespaces.*--userns-remap=off/,
  });
});

test('units granted host paths keep the host user namespace; named volumes do not', (t) => {
  const base = parseUnit('a.service', '[Service]\nExecStart=/bin/true\n').service;
  t.is(hostUsernsReason(base, '/s/m/volumes'), undefined);
  t.regex(
    hostUsernsReason({ ...base, rootDirectory: '/srv/root' }, '/s/m/volumes') ?? '',
    /RootDirectory=\/srv\/root/,
  );
  const image = { ...base, rootDirectory: '/s/m/units/a/image/root', image: 'x@sha256:1' };
  const named = { source: '/s/m/volumes/data', destination: '/data', readOnly: false };
  const host = { source: '/srv/data', destination: '/d', readOnly: false };
  t.is(hostUsernsReason({ ...image, binds: [named] }, '/s/m/volumes'), undefined);
  t.regex(
    hostUsernsReason({ ...image, binds: [named, host] }, '/s/m/volumes') ?? '',
    /Volume=\/srv\/data/,
  );
});

const asRoot = process.getuid?.() === 0 ? test : test.skip;

asRoot(
  'a shifted layer: owners moved into the range, set-id bits kept, a hard link shifted once, symlinks not followed',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-shift-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const layer = join(dir, 'layer');
    await mkdir(join(layer, 'bin'), { recursive: true });
    await writeFile(join(layer, 'bin', 'su'), 'x');
    await chmod(join(layer, 'bin', 'su'), 0o4755);
    await link(join(layer, 'bin', 'su'), join(layer, 'bin', 'su-again'));
    const outside = join(dir, 'outside');
    await writeFile(outside, 'host file');
    await symlink(outside, join(layer, 'out'));
    const { chown } = await import('node:fs/promises');
    await chown(join(layer, 'bin'), 1000, 70000);
    await shiftOwners(layer, { uid: 300000, gid: 400000, size: 65536 });
    const su = await lstat(join(layer, 'bin', 'su'));
    t.is(su.uid, 300000);
    t.is(su.gid, 400000);
    t.is(su.mode & 0o7777, 0o4755, 'set-user-ID kept');
    const bin = await lstat(join(layer, 'bin'));
    t.is(bin.uid, 301000);
    t.is(bin.gid, 400000 + 65534, 'an id beyond the map becomes the mapped nobody');
    t.is((await lstat(join(layer, 'out'))).uid, 300000, 'the link itself');
    t.is((await lstat(outside)).uid, 0, 'never its target');
  },
);

const withRunc = DRIVERS.includes('runc') ? test : test.skip;

withRunc(
  'a state directory under a parent closed to others: auto runs without a user namespace, an explicit range is an error saying which',
  async (t) => {
    const closed = await mkdtemp(join(tmpdir(), 'flotilla-closed-'));
    t.teardown(() => rm(closed, { recursive: true, force: true }));
    await chmod(closed, 0o700);
    const stateDir = join(closed, 'state');
    const notes: string[] = [];
    const driver = await createDriver({
      stateDir,
      machineId: 'm1',
      driver: 'runc',
      usernsRemap: 'auto',
      onUserns: (text) => notes.push(text),
    });
    t.is(driver.userns, undefined);
    t.regex(notes.join('\n'), new RegExp(`parent ${closed} is closed to other users.*chmod o\\+x`));
    await t.throwsAsync(
      createDriver({
        stateDir,
        machineId: 'm1',
        driver: 'runc',
        usernsRemap: { first: 300000, count: 65536 },
      }),
      { message: /--userns-remap: the state directory's parent .* is closed to other users/ },
    );
    await chmod(closed, 0o711);
    const open = await createDriver({
      stateDir,
      machineId: 'm1',
      driver: 'runc',
      usernsRemap: { first: 300000, count: 65536 },
    });
    t.deepEqual(open.userns, { uid: 300000, gid: 300000, size: 65536 });
  },
);

test('the agent makes a missing state directory and its parents open, only its own directory closed', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'flotilla-fresh-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  await chmod(base, 0o755);
  // As `flotilla cluster up` gives each agent <dir>/agents/N, which the agent makes itself: a
  // parent made closed would keep user-namespace containers from their root (auto decides
  // before it exists).
  const stateDir = join(base, 'agents', '1');
  await mkdirPrivate(join(stateDir, 'm1'));
  t.is(await stateDirProblem(stateDir), undefined);
  t.not((await lstat(join(base, 'agents'))).mode & 0o001, 0, 'agents/ is o+x');
  t.is((await lstat(join(stateDir, 'm1'))).mode & 0o077, 0, 'the machine directory is 0700');
});

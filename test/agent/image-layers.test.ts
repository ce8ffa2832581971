/**
 * Layer unpacking with GNU tar against crafted layers, one test per trick, each asserting its
 * own outcome: nothing is ever written outside the layer's directory, a refused layer leaves
 * nothing behind, device nodes are dropped, and OCI whiteouts become overlay whiteouts.
 * Needs root (device nodes, trusted.* attributes); skipped otherwise.
 */
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ImageStoreError } from '../../agent/images/errors.js';
import { unpackLayer, type UnpackResult } from '../../agent/images/layers.js';

const test: TestFn = process.getuid?.() === 0 ? anyTest : (anyTest.skip as TestFn);
const run = promisify(execFile);

interface Entry {
  readonly name: string;
  /** '0' file, '1' hard link, '2' symlink, '3' char device, '4' block device, '5' directory */
  readonly type: '0' | '1' | '2' | '3' | '4' | '5';
  readonly data?: string;
  readonly link?: string;
}

/** A ustar archive of `entries`, written by hand so it can say what no tar tool would. */
function tarball(entries: readonly Entry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '');
    const h = Buffer.alloc(512);
    h.write(e.name, 0, 100);
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
    h.write('00000000000\0', 136);
    h.write('        ', 148);
    h.write(e.type, 156);
    h.write(e.link ?? '', 157, 100);
    h.write('ustar\u000000', 257);
    h.write(e.type === '3' ? '0000001\0' : '0000000\0', 329);
    h.write(e.type === '3' ? '0000003\0' : '0000000\0', 337);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    out.push(join(e.parentPath, e.name).slice(dir.length + 1));
  }
  return out.sort();
}

/** What unpacking a crafted layer did: its result or error, and every directory around it. */
interface Outcome {
  readonly result: UnpackResult | ImageStoreError;
  /** A directory next to the store that the layer names: must stay empty. */
  readonly outside: readonly string[];
  /** The test's base directory: only layer.tar, outside and store. */
  readonly base: readonly string[];
  /** The layers directory: the layer, or nothing when refused (no partial directory). */
  readonly store: readonly string[];
  /** Paths inside the unpacked layer (empty when refused). */
  readonly tree: readonly string[];
  readonly dir: string;
}

/**
 * Unpacks the layer `entries(outside)` builds, with one legitimate file `ok` first, and
 * reports what happened, everywhere. `inspect` runs before the directories are removed.
 */
async function unpackCrafted(
  t: ExecutionContext,
  entries: (outside: string) => Entry[],
): Promise<Outcome> {
  const base = await mkdtemp(join(tmpdir(), 'flotilla-layer-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const outside = join(base, 'outside');
  const store = join(base, 'store', 'layers');
  await mkdir(outside, { recursive: true });
  await mkdir(store, { recursive: true });
  const blob = join(base, 'layer.tar');
  await writeFile(blob, tarball([{ name: 'ok', type: '0', data: 'fine\n' }, ...entries(outside)]));
  const dir = join(store, 'crafted');
  const result = await unpackLayer(blob, 'application/vnd.oci.image.layer.v1.tar', dir).then(
    (r) => r,
    (err: unknown) => {
      if (err instanceof ImageStoreError) return err;
      throw err;
    },
  );
  return {
    result,
    outside: await readdir(outside),
    base: (await readdir(base)).sort(),
    store: await readdir(store),
    tree: result instanceof ImageStoreError ? [] : await tree(dir),
    dir,
  };
}

/** The layer was refused as invalid, with `why`, and left nothing anywhere. */
function refusedCleanly(t: ExecutionContext, o: Outcome, why: RegExp): void {
  if (!(o.result instanceof ImageStoreError)) {
    t.fail(`unpacked: ${o.tree.join(' ')}`);
    return;
  }
  t.is(o.result.code, 'invalid-image', o.result.message);
  t.regex(o.result.message, why);
  t.deepEqual(o.outside, [], 'nothing written outside');
  t.deepEqual(o.base, ['layer.tar', 'outside', 'store']);
  t.deepEqual(o.store, [], 'no partial layer left behind');
}

/** The layer was unpacked, and nothing was written outside it. */
function unpacked(t: ExecutionContext, o: Outcome): UnpackResult {
  if (o.result instanceof ImageStoreError) {
    t.fail(`refused: ${o.result.message}`);
    throw o.result;
  }
  t.deepEqual(o.outside, [], 'nothing written outside');
  t.deepEqual(o.base, ['layer.tar', 'outside', 'store']);
  t.deepEqual(o.store, ['crafted']);
  return o.result;
}

test('crafted layer: a ../ member is refused and writes nothing', async (t) => {
  const o = await unpackCrafted(t, () => [{ name: '../escape-dotdot', type: '0', data: 'x' }]);
  refusedCleanly(t, o, /Member name contains '\.\.'/);
});

test('crafted layer: a member climbing out through sub/../../.. is refused', async (t) => {
  const o = await unpackCrafted(t, () => [
    { name: 'sub/../../../escape-deeper', type: '0', data: 'x' },
  ]);
  refusedCleanly(t, o, /Member name contains '\.\.'/);
});

test('crafted layer: an absolute member name lands inside the layer, its / stripped', async (t) => {
  const o = await unpackCrafted(t, (outside) => [
    { name: `${outside}/absolute`, type: '0', data: 'x' },
  ]);
  unpacked(t, o);
  t.true(
    o.tree.some((p) => p.endsWith('outside/absolute')),
    o.tree.join(' '),
  );
});

test('crafted layer: symlinks out (absolute, climbing) stay links and point where they said', async (t) => {
  const o = await unpackCrafted(t, (outside) => [
    { name: 'out', type: '2', link: outside },
    { name: 'up', type: '2', link: '../../../outside' },
  ]);
  unpacked(t, o);
  t.true((await lstat(join(o.dir, 'out'))).isSymbolicLink());
  t.true((await lstat(join(o.dir, 'up'))).isSymbolicLink());
});

test('crafted layer: a write through an absolute symlink out is refused', async (t) => {
  const o = await unpackCrafted(t, (outside) => [
    { name: 'out', type: '2', link: outside },
    { name: 'out/through-symlink', type: '0', data: 'x' },
  ]);
  refusedCleanly(t, o, /out\/through-symlink: Cannot open: Not a directory/);
});

test('crafted layer: a write through a climbing relative symlink is refused', async (t) => {
  const o = await unpackCrafted(t, () => [
    { name: 'up', type: '2', link: '../../../outside' },
    { name: 'up/through-relative', type: '0', data: 'x' },
  ]);
  refusedCleanly(t, o, /up\/through-relative: Cannot open: Not a directory/);
});

test('crafted layer: a hard link to a host file (absolute or climbing) is refused', async (t) => {
  const climbing = await unpackCrafted(t, (outside) => [
    { name: 'hard', type: '1', link: `${outside}/../layer.tar` },
  ]);
  refusedCleanly(t, climbing, /hard: Cannot hard link/);
  const absolute = await unpackCrafted(t, () => [{ name: 'hard', type: '1', link: '/etc/passwd' }]);
  refusedCleanly(t, absolute, /hard: Cannot hard link to .etc\/passwd/);
});

test('crafted layer: a hard link inside the layer is kept, one inode', async (t) => {
  const o = await unpackCrafted(t, () => [{ name: 'hard', type: '1', link: 'ok' }]);
  unpacked(t, o);
  const [a, b] = await Promise.all([lstat(join(o.dir, 'ok')), lstat(join(o.dir, 'hard'))]);
  t.is(a.ino, b.ino);
});

test('crafted layer: a character device is dropped', async (t) => {
  const o = await unpackCrafted(t, () => [{ name: 'null', type: '3' }]);
  t.is(unpacked(t, o).devicesRemoved, 1);
  t.deepEqual(o.tree, ['ok']);
});

test('crafted layer: a block device is dropped', async (t) => {
  const o = await unpackCrafted(t, () => [{ name: 'disk', type: '4' }]);
  t.is(unpacked(t, o).devicesRemoved, 1);
  t.deepEqual(o.tree, ['ok']);
});

test('crafted layer: a whiteout of .. (.wh...) is refused, nothing made above the layer', async (t) => {
  const o = await unpackCrafted(t, () => [{ name: '.wh...', type: '0' }]);
  refusedCleanly(t, o, /whiteout "\.wh\.\.\." .*names no file/);
});

test('crafted layer: an empty whiteout (.wh.) is refused', async (t) => {
  const o = await unpackCrafted(t, () => [
    { name: 'd/', type: '5' },
    { name: 'd/.wh.', type: '0' },
  ]);
  refusedCleanly(t, o, /whiteout "\.wh\." in d, which names no file/);
});

test('crafted layer: a whiteout of a name the same layer holds is refused', async (t) => {
  const o = await unpackCrafted(t, () => [{ name: '.wh.ok', type: '0' }]);
  refusedCleanly(t, o, /both removes \(whiteout\) and holds ok/);
});

test('crafted layer: a whiteout through a symlink out is refused', async (t) => {
  const o = await unpackCrafted(t, (outside) => [
    { name: 'lnk', type: '2', link: outside },
    { name: 'lnk/.wh.x', type: '0' },
  ]);
  refusedCleanly(t, o, /lnk\/\.wh\.x: Cannot open: Not a directory/);
});

test('OCI whiteouts become overlay whiteouts: a 0/0 character device and an opaque directory', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'flotilla-layer-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const blob = join(base, 'layer.tar');
  await writeFile(
    blob,
    tarball([
      { name: 'etc/', type: '5' },
      { name: 'etc/.wh.motd', type: '0' },
      { name: 'var/', type: '5' },
      { name: 'var/.wh..wh..opq', type: '0' },
      { name: 'var/kept', type: '0', data: 'kept' },
    ]),
  );
  const dir = join(base, 'layer');
  const result = await unpackLayer(blob, 'application/vnd.oci.image.layer.v1.tar', dir);
  t.is(result.whiteouts, 2);
  const motd = await lstat(join(dir, 'etc', 'motd'));
  t.true(motd.isCharacterDevice());
  t.is(motd.rdev, 0);
  t.deepEqual(await tree(dir), ['etc', 'etc/motd', 'var', 'var/kept']);
  const { stdout } = await run('getfattr', [
    '-n',
    'trusted.overlay.opaque',
    '--only-values',
    join(dir, 'var'),
  ]);
  t.is(stdout, 'y');
});

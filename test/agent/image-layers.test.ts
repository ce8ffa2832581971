/**
 * Layer unpacking with GNU tar against crafted layers: nothing is ever written outside the
 * layer's directory, device nodes are dropped, and OCI whiteouts become overlay whiteouts.
 * Needs root (device nodes, trusted.* attributes); skipped otherwise.
 */
import anyTest, { type TestFn } from 'ava';
import { execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { unpackLayer } from '../../agent/images/layers.js';

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

test('a crafted layer (../ paths, absolute symlinks out, writes through them, devices) writes nothing outside its directory', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'flotilla-layer-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const outside = join(base, 'outside');
  const store = join(base, 'store', 'layers');
  await mkdir(outside, { recursive: true });
  await mkdir(store, { recursive: true });
  const blob = join(base, 'layer.tar');
  await writeFile(
    blob,
    tarball([
      { name: 'ok', type: '0', data: 'fine\n' },
      { name: '../escape-dotdot', type: '0', data: 'x' },
      { name: 'sub/../../../escape-deeper', type: '0', data: 'x' },
      { name: `${outside}/absolute`, type: '0', data: 'x' },
      { name: 'out', type: '2', link: outside },
      { name: 'out/through-symlink', type: '0', data: 'x' },
      { name: 'up', type: '2', link: '../../../outside' },
      { name: 'up/through-relative', type: '0', data: 'x' },
      { name: 'hard', type: '1', link: `${outside}/../layer.tar` },
      { name: 'null', type: '3' },
      { name: 'disk', type: '4' },
    ]),
  );
  const dir = join(store, 'crafted');
  const result = await unpackLayer(blob, 'application/vnd.oci.image.layer.v1.tar', dir).then(
    (r) => r,
    (err: Error) => err,
  );
  t.log(
    result instanceof Error ? `refused: ${result.message}` : `unpacked: ${JSON.stringify(result)}`,
  );
  t.deepEqual(await readdir(outside), []);
  t.deepEqual((await readdir(base)).sort(), ['layer.tar', 'outside', 'store']);
  t.deepEqual(await readdir(join(base, 'store')), ['layers']);
  if (!(result instanceof Error)) {
    const files = await tree(dir);
    t.false(files.includes('null') || files.includes('disk'), files.join(' '));
    // The symlinks exist as links, pointing where they said; nothing went through them.
    t.true((await lstat(join(dir, 'out'))).isSymbolicLink());
  } else {
    // A refused layer leaves no directory behind, not even a partial one.
    t.deepEqual(await readdir(store), []);
  }
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

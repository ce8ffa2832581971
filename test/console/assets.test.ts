/**
 * The console's files as the scheduler serves them (scheduler/http/console-assets.ts), from a
 * real build folder: content types, caching, the index.html fallback for client routes, and
 * no way out of the folder.
 */
import test from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConsoleAssets } from '../../scheduler/http/console-assets.js';

let dir = '';
let assets: ConsoleAssets;
test.before(async () => {
  const root = await mkdtemp(join(tmpdir(), 'flotilla-console-'));
  dir = join(root, 'ui');
  await mkdir(dir);
  await writeFile(join(dir, 'index.html'), '<html>console</html>');
  await writeFile(join(dir, 'main-ABCDEFGH.js'), 'console.log(1)');
  await writeFile(join(dir, 'style-ABCDEFGH.css'), 'body{}');
  await writeFile(join(root, 'secret.txt'), 'secret');
  assets = new ConsoleAssets(dir);
});
test.after.always(async () => {
  if (dir !== '') await rm(join(dir, '..'), { recursive: true, force: true });
});

test('a bundle is served with its type and cached for good; index.html is revalidated', async (t) => {
  const js = await assets.get('main-ABCDEFGH.js');
  t.is(js.status, 200);
  t.is(js.headers['content-type'], 'text/javascript; charset=utf-8');
  t.regex(js.headers['cache-control'] ?? '', /immutable/);
  const css = await assets.get('style-ABCDEFGH.css');
  t.is(css.headers['content-type'], 'text/css; charset=utf-8');
  const index = await assets.get('');
  t.is(index.status, 200);
  t.is(index.headers['content-type'], 'text/html; charset=utf-8');
  t.is(index.headers['cache-control'], 'no-cache');
  t.regex(index.headers['content-security-policy'] ?? '', /default-src 'self'/);
});

test('a client route is answered with index.html; a missing file with 404', async (t) => {
  for (const route of ['units', 'units/web@1.service', 'machines/m1/']) {
    const a = await assets.get(route);
    t.is(a.status, 200, route);
    t.is(a.body.toString(), '<html>console</html>');
  }
  t.is((await assets.get('nothere-ABCDEFGH.js')).status, 404);
});

test('no path leaves the console folder', async (t) => {
  for (const path of [
    '../secret.txt',
    'a/../../secret.txt',
    '..\\secret.txt',
    'x\0.js',
    '/../secret.txt',
  ]) {
    const a = await assets.get(path);
    t.true(a.status === 400 || a.status === 404, `${path}: ${a.status}`);
    t.false(a.body.toString().includes('secret'), path);
  }
});

test('an unbuilt console says how to build it', async (t) => {
  const a = await new ConsoleAssets(join(dir, 'missing')).get('units');
  t.is(a.status, 404);
  t.regex(a.body.toString(), /npm run build/);
});

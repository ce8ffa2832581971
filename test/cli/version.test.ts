/**
 * `flotctl --version`, `flotctl version` and `flotilla --version`: the version and the commit
 * the build was made from (dist/build-info.json, written by `npm run build`); a build without
 * git says "unknown commit" instead of failing.
 */
import { execFile, execFileSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { versionLine } from '../../lib/version.js';
import { flotctl, ROOT } from './cli-kit.js';

const run = promisify(execFile);

/** The checkout's commit, or '' where there is no git (then the build says unknown). */
function headCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

const VERSION = (
  JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

function expectedLine(program: string): RegExp {
  const head = headCommit();
  const commit = head === '' ? 'unknown commit' : `commit ${head.slice(0, 12)}(, modified)?`;
  return new RegExp(`^${program} ${VERSION.replace(/\./g, '\\.')} \\(${commit}\\)\\n$`);
}

test('flotctl --version and flotctl version print the version and the commit, exit 0, offline', async (t) => {
  for (const args of [['--version'], ['version'], ['--endpoint', '127.0.0.1:1', '--version']]) {
    const r = await flotctl(args);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, expectedLine('flotctl'), args.join(' '));
    t.is(r.stderr, '');
  }
  const json = await flotctl(['-o', 'json', 'version']);
  t.like(JSON.parse(json.stdout), { version: VERSION, commit: headCommit() });
});

test('flotilla --version prints the version and the commit', async (t) => {
  const { stdout } = await run(process.execPath, [join(ROOT, 'bin/flotilla'), '--version'], {
    timeout: 30_000,
  });
  t.regex(stdout, expectedLine('flotilla'));
});

test('a build made without git records no commit, and the version says "unknown commit"', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-nogit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'scripts'));
  await cp(join(ROOT, 'scripts/build-info.mjs'), join(dir, 'scripts/build-info.mjs'));
  // No .git in dir, and git may not look above it.
  await run(process.execPath, [join(dir, 'scripts/build-info.mjs')], {
    cwd: dir,
    env: { ...process.env, GIT_CEILING_DIRECTORIES: tmpdir(), GIT_DIR: '' },
    timeout: 30_000,
  });
  const info = JSON.parse(await readFile(join(dir, 'dist/build-info.json'), 'utf8')) as unknown;
  t.deepEqual(info, { commit: '', dirty: false });
  t.is(
    versionLine('flotctl', { version: '1.2.3', commit: '', dirty: false }),
    'flotctl 1.2.3 (unknown commit)',
  );
  t.is(
    versionLine('flotctl', { version: '1.2.3', commit: 'ab'.repeat(20), dirty: true }),
    'flotctl 1.2.3 (commit abababababab, modified)',
  );
});

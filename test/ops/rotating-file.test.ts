/**
 * The audit log's file: rotated by size into FILE.1, FILE.2 ..., keeping `keep`, lines whole.
 */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { RotatingFile } from '../../daemon/rotating-file.js';
import { parseSchedulerArgs } from '../../scheduler/options.js';

test('a rotating file moves full files aside, keeps the newest, and never splits a line', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-rotate-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'audit.log');
  const file = RotatingFile.open(path, { maxBytes: 100, keep: 2 });
  for (let i = 0; i < 20; i++)
    file.writeLine(`line ${String(i).padStart(2, '0')} ${'x'.repeat(20)}`);
  file.close();
  t.deepEqual((await readdir(dir)).sort(), ['audit.log', 'audit.log.1', 'audit.log.2']);
  const lines = (
    await Promise.all(
      ['audit.log.2', 'audit.log.1', 'audit.log'].map((f) => readFile(join(dir, f), 'utf8')),
    )
  )
    .join('')
    .split('\n')
    .filter((l) => l !== '');
  // The newest lines survive, in order, each whole; the oldest were dropped with FILE.3.
  t.is(lines[lines.length - 1], `line 19 ${'x'.repeat(20)}`);
  for (const [i, l] of lines.entries()) {
    if (i > 0) t.true(l > (lines[i - 1] ?? ''), 'in order');
    t.regex(l, /^line \d\d x{20}$/);
  }
  t.true(lines.length < 20);
  t.is((await stat(path)).mode & 0o777, 0o600);
});

test('--auth-policy: a file that is missing or wrong stops the scheduler with a usage error naming it', (t) => {
  const args = ['--auth-policy', '/etc/flotilla/policy.json', '--listen', 'none'];
  const missing = t.throws(() =>
    parseSchedulerArgs(args, () => {
      throw new Error('ENOENT: no such file');
    }),
  );
  t.regex(missing.message, /--auth-policy=\/etc\/flotilla\/policy\.json: cannot read it \(ENOENT/);
  const wrong = t.throws(() => parseSchedulerArgs(args, () => '{"roles": {}, "identities": [{}]}'));
  t.regex(
    wrong.message,
    /--auth-policy: \/etc\/flotilla\/policy\.json: identities\[0\]\.roles: expected a JSON array/,
  );
  const ok = parseSchedulerArgs(args, () => '{"roles": {}, "identities": []}');
  t.false(ok.help);
  if (!ok.help) t.is(ok.options.policy?.identities.length, 0);
});

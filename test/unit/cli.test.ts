import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import test from 'ava';

/** The repository root from dist/test/unit/, and the shared examples beside it. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
import { EXAMPLES } from '../../testkit/examples.js';
const FLOTCTL = `${ROOT}bin/flotctl`;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run bin/flotctl (needs `npm run build` first, which `npm test` does). */
function flotctl(...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [FLOTCTL, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr });
    });
  });
}

const good = readdirSync(EXAMPLES)
  .filter((f) => f.endsWith('.service'))
  .map((f) => EXAMPLES + f);
const bad = readdirSync(`${EXAMPLES}bad/`).map((f) => `${EXAMPLES}bad/${f}`);

/** A phrase each bad example's output must contain, beyond the file name. */
const problems: Readonly<Record<string, string>> = {
  'bad name!.service': 'invalid unit name',
  'bad-memory.service': ':3: MemoryMax=lots',
  'global-with-machineof.service': ':5: MachineOf= cannot be combined with Global=',
  'machineid-with-conflicts.service': ':3: Conflicts= cannot be combined with MachineID=',
  'metadata-without-value.service': ':4: MachineMetadata="region" has no value',
  'no-section.service': ':1: "just some text" is before the first [Section] header',
  'self-peer.service':
    ":5: MachineOf=self-peer.service is matched by this unit's own Conflicts=self-*",
  'unknown-xfleet-key.service': ':4: unknown [X-Fleet] key "Conflict"',
  'unterminated-section.service': ':1: section header "[Service" is missing its closing "]"',
};

test('bin/flotctl is executable with a node shebang', async (t) => {
  const { access, readFile, constants } = await import('node:fs/promises');
  await t.notThrowsAsync(access(FLOTCTL, constants.X_OK));
  t.true((await readFile(FLOTCTL, 'utf8')).startsWith('#!/usr/bin/env node\n'));
});

test('verify accepts every example: exit 0, "OK: N unit files" (nothing with -q)', async (t) => {
  const r = await flotctl('verify', ...good);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.is(r.stdout, `OK: ${good.length} unit files\n`);
  const one = await flotctl('verify', good[0] ?? '');
  t.is(one.stdout, 'OK: 1 unit file\n');
  const quiet = await flotctl('verify', '-q', ...good);
  t.is(quiet.code, 0);
  t.is(quiet.stdout + quiet.stderr, '');
});

test('verify says an empty file is empty and a binary file is not a text unit file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flotctl-verify-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'empty.service'), '');
  await writeFile(join(dir, 'blank.service'), '\n  \n');
  // The head of an ELF program, as `cp /bin/true x.service` would give.
  await writeFile(join(dir, 'prog.service'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0]));
  await writeFile(join(dir, 'gzip.service'), Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x3d, 0x0a]));
  const r = await flotctl(
    'verify',
    ...['empty', 'blank', 'prog', 'gzip'].map((n) => join(dir, `${n}.service`)),
  );
  t.is(r.code, 1);
  const empty =
    'the file is empty: a unit file needs at least a [Service] section with an ExecStart= line';
  const binary =
    ':1: not a text unit file: it holds binary data; give the unit file itself, not a program or an archive';
  t.is(
    r.stdout,
    [
      `${dir}/empty.service: ${empty}`,
      `${dir}/blank.service: ${empty}`,
      `${dir}/prog.service${binary}`,
      `${dir}/gzip.service${binary}`,
      '',
    ].join('\n'),
  );
  t.notRegex(r.stdout, /=\n|ExecStart=:|\\x/, 'no escaped garbage, no missing ExecStart');
});

for (const file of bad) {
  const base = file.slice(file.lastIndexOf('/') + 1);
  test(`verify rejects bad/${base}: exit 1, the output names the file and the problem`, async (t) => {
    const r = await flotctl('verify', file);
    t.is(r.code, 1);
    t.true(r.stdout.startsWith(file), r.stdout);
    t.true(r.stdout.includes(problems[base] ?? ':'), r.stdout);
  });
}

test('verify on a mix reports only the bad files and exits 1', async (t) => {
  const r = await flotctl('verify', ...good, ...bad);
  t.is(r.code, 1);
  const named = new Set(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => l.slice(0, l.indexOf('.service') + 8)),
  );
  t.deepEqual([...named].sort(), [...bad].sort());
});

test('verify on a missing file says it cannot read it and exits 1', async (t) => {
  const r = await flotctl('verify', `${EXAMPLES}does-not-exist.service`);
  t.is(r.code, 1);
  t.regex(r.stdout, /does-not-exist\.service: cannot read the file \(ENOENT\)/);
});

test('usage errors exit 2: no verb, unknown verb, verify without files, unknown option', async (t) => {
  for (const args of [[], ['frobnicate'], ['verify'], ['verify', '--bogus', good[0] ?? '']]) {
    const r = await flotctl(...args);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, /Usage: flotctl/, args.join(' '));
  }
});

test('--help lists the verbs and verify --help explains verify, both exit 0', async (t) => {
  const top = await flotctl('--help');
  t.is(top.code, 0);
  t.regex(top.stdout, /verify\s+check unit files/);
  const verify = await flotctl('verify', '--help');
  t.is(verify.code, 0);
  t.regex(verify.stdout, /^Usage: flotctl verify \[-q\] FILE\.\.\./);
});

import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
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

test('verify accepts every example: exit 0, no output', async (t) => {
  const r = await flotctl('verify', ...good);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.is(r.stdout, '');
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
  t.regex(verify.stdout, /^Usage: flotctl verify FILE\.\.\./);
});

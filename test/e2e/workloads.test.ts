/**
 * End to end: what an operator does day to day on a three-machine cluster, through
 * bin/flotctl: scale a template up and down, run a oneshot, follow a unit's output, drain a
 * machine, and submit broken files (each refused, nothing written).
 */
import anyTest, { type TestFn } from 'ava';
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { assertEventually } from '../../testkit/index.js';
import { clusterForFile, isRunningView, EXAMPLES, FLOTCTL, type UnitView } from './e2e-kit.js';

const { serial, cluster: c } = clusterForFile(anyTest as TestFn, { name: 'e2ewl', net: 203 });

const webs = (u: Map<string, UnitView>): string[] =>
  [...u.keys()].filter((n) => /^web@\d+\.service$/.test(n)).sort();

serial(
  'scale web@.service to 5: refused past what fits; with --allow-pending three fit, two wait with a reason; then 2 remain',
  async (t) => {
    await c().ok(['submit', join(EXAMPLES, 'web@.service')]);
    const refused = await c().flotctl(['scale', 'web@.service=5']);
    t.is(refused.code, 1);
    t.regex(refused.stderr, /^web@\.service=5: at most 3 of 5 can be placed now \(0\/3 machines: /);
    t.regex(refused.stderr, /pass --allow-pending to queue the rest\n$/);
    const up = await c().flotctl([
      'scale',
      '--timeout',
      '60s',
      '--allow-pending',
      'web@.service=5',
    ]);
    t.is(up.code, 1, 'two instances cannot be placed, and scale says so');
    const five = await c().waitUnits('3 of 5 running', (u) => {
      const names = webs(u);
      return names.length === 5 && names.filter((n) => isRunningView(u.get(n))).length === 3;
    });
    const placed = webs(five).filter((n) => isRunningView(five.get(n)));
    t.is(new Set(placed.map((n) => five.get(n)?.machine)).size, 3, 'one per machine (Conflicts)');
    const waiting = webs(five).filter((n) => !isRunningView(five.get(n)));
    for (const n of waiting) t.regex(five.get(n)?.unscheduled ?? '', /conflict/i, `${n} says why`);

    await c().ok(['scale', '--timeout', '60s', 'web@.service=2']);
    const two = await c().waitUnits('two remain', (u) => webs(u).length === 2);
    t.deepEqual(webs(two), ['web@1.service', 'web@2.service']);
    await c().waitUnits(
      'both run',
      (u) => isRunningView(u.get('web@1.service')) && isRunningView(u.get('web@2.service')),
    );
  },
);

serial('a oneshot runs to completion', async (t) => {
  await c().ok(['start', '--timeout', '60s', join(EXAMPLES, 'batch-once.service')]);
  const done = await c().waitUnits(
    'batch-once exited',
    (u) => u.get('batch-once.service')?.sub === 'exited',
  );
  t.is(
    done.get('batch-once.service')?.active,
    'active',
    'a successful oneshot stays active (exited)',
  );
  const journal = await c().ok(['journal', 'batch-once.service']);
  t.regex(journal.stdout, /computing[\s\S]*done/);
});

serial('journal -f shows hello.service output as it is written', async (t) => {
  await c().ok(['start', '--timeout', '60s', join(EXAMPLES, 'hello.service')]);
  const child = spawn(process.execPath, [FLOTCTL, 'journal', '-f', 'hello.service'], {
    env: { ...process.env, FLOTCTL_ENDPOINT: c().endpoint },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  await assertEventually(() => out.includes('hello from'), {
    timeoutMs: 30_000,
    message: 'first line',
  });
  const seen = out.split('\n').filter((l) => l.includes('hello from')).length;
  await assertEventually(
    () => out.split('\n').filter((l) => l.includes('hello from')).length >= seen + 2,
    { timeoutMs: 30_000, message: 'new lines keep arriving' },
  );
  child.kill('SIGINT');
  t.is(await exited, 0, 'Ctrl-C ends journal -f cleanly');
});

serial('drain empties a machine and its units run elsewhere', async (t) => {
  const before = await c().waitUnits('hello runs', (u) => isRunningView(u.get('hello.service')));
  const machine = before.get('hello.service')?.machine ?? '';
  const onIt = [...before.values()]
    .filter((u) => u.machine === machine && isRunningView(u))
    .map((u) => u.name);
  await c().ok(['drain', machine]);
  t.teardown(() => c().flotctl(['undrain', machine]));
  const after = await c().waitUnits('nothing left on the drained machine', (u) =>
    [...u.values()].every((x) => x.machine !== machine),
  );
  t.true(isRunningView(after.get('hello.service')), 'hello runs elsewhere');
  const listed = await c().ok(['list-units', '--machine', machine, '--no-legend']);
  t.is(listed.stdout.trim(), '', `list-units --machine shows nothing (was: ${onIt.join(', ')})`);
  await c().ok(['undrain', machine]);
});

serial('every bad example is rejected and nothing is written', async (t) => {
  const store = c().openStore();
  t.teardown(() => store.close());
  const fingerprint = async (): Promise<string> => {
    const { items } = await store.list(store.keys.dir('unit'));
    return items.map((kv) => `${kv.key}@${kv.modRevision}`).join('\n');
  };
  const before = await fingerprint();
  const bad = (await readdir(join(EXAMPLES, 'bad'))).filter((f) => f.endsWith('.service'));
  t.true(bad.length >= 9);
  for (const file of bad) {
    const run = await c().flotctl(['submit', join(EXAMPLES, 'bad', file)]);
    t.is(run.code, 1, `${file} is refused`);
    t.not(run.stderr.trim(), '', `${file}: says why`);
  }
  const all = await c().flotctl([
    'submit',
    ...bad.map((f) => join(EXAMPLES, 'bad', f)),
    join(EXAMPLES, 'db.service'),
  ]);
  t.is(all.code, 1, 'a batch with one bad file is refused whole');
  t.is(await fingerprint(), before, 'units/ is exactly as before');
  t.false((await c().units()).has('db.service'));
});

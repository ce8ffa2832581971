/**
 * Unit logs: captured from both drivers, tail, follow (across rotations, cancellable), and
 * the size cap.
 */
import test from 'ava';
import { appendFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogStore } from '../../agent/index.js';
import { assertEventually } from '../../testkit/index.js';
import { DRIVERS, managed, running, unit } from './harness.js';

const FLOOD = `/bin/sh -c 'i=0; while true; do echo "flood-$i ${'x'.repeat(80)}"; i=$((i+1)); sleep 0.02; done'`;
const CHATTY = `/bin/sh -c 'i=0; while true; do echo out-$i; echo err-$i >&2; i=$((i+1)); sleep 0.05; done'`;

async function store(t: import('ava').ExecutionContext, maxBytes = 1000): Promise<LogStore> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-logs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return new LogStore({ dir, maxBytes, pollMs: 20 });
}

const numbered = (from: number, to: number): string[] =>
  Array.from({ length: to - from }, (_, i) => `line ${from + i}`);

test('tail returns the last N lines, reaching into the rotated file when needed', async (t) => {
  const logs = await store(t, 100);
  const path = logs.path('a.service');
  await appendFile(path, `${numbered(0, 20).join('\n')}\n`);
  t.true(await logs.rotateIfNeeded('a.service'));
  await appendFile(path, `${numbered(20, 23).join('\n')}\npartial`);
  t.deepEqual(await logs.tail('a.service', 3), ['line 21', 'line 22', 'partial']);
  t.deepEqual(await logs.tail('a.service', 6), [
    'line 18',
    'line 19',
    'line 20',
    'line 21',
    'line 22',
    'partial',
  ]);
  t.deepEqual(await logs.tail('a.service', 0), []);
  t.deepEqual(await logs.tail('never.service', 5), []);
});

test('follow yields every new line exactly once across rotations, after its backlog', async (t) => {
  const logs = await store(t, 200);
  const path = logs.path('b.service');
  await appendFile(path, `${numbered(0, 5).join('\n')}\n`);
  const controller = new AbortController();
  const seen: string[] = [];
  const reading = (async () => {
    for await (const line of logs.follow('b.service', { signal: controller.signal, backlog: 2 }))
      seen.push(line);
  })();
  for (let i = 5; i < 200; i += 5) {
    await appendFile(path, `${numbered(i, i + 5).join('\n')}\n`);
    if (i % 20 === 0) await logs.rotateIfNeeded('b.service');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await assertEventually(() => seen.at(-1) === 'line 199', { message: 'all lines followed' });
  controller.abort();
  await reading;
  t.deepEqual(seen, numbered(3, 200));
});

test('a follower stops when the consumer breaks out of the loop', async (t) => {
  const logs = await store(t);
  const path = logs.path('c.service');
  const reading = (async () => {
    for await (const line of logs.follow('c.service')) if (line === 'stop') break;
    return 'ended';
  })();
  await appendFile(path, 'one\nstop\n');
  t.is(await reading, 'ended');
});

for (const driver of DRIVERS) {
  test(`${driver}: a unit's stdout and stderr are captured; tail and follow read them`, async (t) => {
    const m = await managed(t, { driver });
    await m.manager.start(unit('chatty.service', CHATTY));
    await running(m, 'chatty.service');
    const recent = await assertEventually(async () => {
      const lines = (await m.manager.logs.tail('chatty.service', 4)).filter(
        (l) => !l.startsWith('flotilla:'),
      );
      if (lines.length < 4) throw new Error(`only ${lines.length} lines`);
      return lines;
    });
    t.true(recent.some((l) => l.startsWith('out-')) && recent.some((l) => l.startsWith('err-')));
    const controller = new AbortController();
    const followed: string[] = [];
    for await (const line of m.manager.logs.follow('chatty.service', {
      signal: controller.signal,
    })) {
      followed.push(line);
      if (followed.length === 6) controller.abort();
    }
    const outs = followed.filter((l) => l.startsWith('out-')).map((l) => Number(l.slice(4)));
    t.true(outs.length >= 2);
    t.deepEqual(
      outs,
      outs.map((_, i) => (outs[0] ?? 0) + i),
      'consecutive lines, none missed',
    );
    const newestTail = Math.max(
      ...recent.filter((l) => l.startsWith('out-')).map((l) => Number(l.slice(4))),
    );
    t.true((outs[0] ?? 0) > newestTail, 'follow yields only new lines');
  });

  test(`${driver}: a chatty unit's log is rotated at the cap`, async (t) => {
    const m = await managed(t, { driver, logMaxBytes: 2_000, logCheckMs: 100 });
    await m.manager.start(unit('flood.service', FLOOD));
    await running(m, 'flood.service');
    const path = m.manager.logs.path('flood.service');
    await assertEventually(async () => (await stat(`${path}.1`)).size > 2_000, {
      message: 'rotated',
    });
    await assertEventually(async () => (await stat(path)).size < 2_000, {
      message: 'current file below the cap again',
    });
    const last = await m.manager.logs.tail('flood.service', 2);
    t.is(last.length, 2);
    t.regex(last[1] ?? '', /^flood-\d+ x+$/);
  });
}

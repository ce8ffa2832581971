/**
 * The agent's tool runner (runc state/kill/delete/list, mount, umount): it always returns, and
 * what it keeps of a tool's output is bounded.
 */
import test from 'ava';
import { runCapture } from '../../agent/runtime/spawn.js';

test('a tool that leaves a process holding its output still returns, with what it printed', async (t) => {
  const started = Date.now();
  // The background sleep inherits stdout: 'close' would wait for it; the tool itself is done.
  const res = await runCapture('/bin/sh', ['-c', 'sleep 30 & echo $!; exit 3'], 10_000);
  const ms = Date.now() - started;
  const sleeper = Number(res.stdout.trim());
  t.teardown(() => {
    try {
      if (sleeper > 0) process.kill(sleeper, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  t.is(res.code, 3);
  t.regex(res.stdout, /^[0-9]+\n$/);
  t.true(ms < 8_000, `returned after ${ms} ms, not when the sleep ended`);
});

test('a tool that prints more than 4 MiB is kept to 4 MiB per stream', async (t) => {
  const res = await runCapture('/bin/sh', ['-c', 'head -c 6000000 /dev/zero | tr "\\0" a'], 30_000);
  t.is(res.code, 0);
  t.is(res.stdout.length, 4 * 1024 * 1024);
  t.regex(res.stdout.slice(-10), /^a+$/);
});

test('a tool killed at its timeout returns a signal exit', async (t) => {
  const res = await runCapture('/bin/sh', ['-c', 'exec sleep 30'], 300);
  t.not(res.code, 0);
});

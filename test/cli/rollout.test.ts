/**
 * flotctl's rollout lines, against the real API over a real etcd (no leader runs: each test
 * moves the rollout record itself where a leader would): durations as `0s` and `5s`, a
 * pause's reason said once, and a second `rollback` (back to the file the first rolled back)
 * refused unless --force.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import test, { type ExecutionContext } from 'ava';
import { codecs } from '../../store/index.js';
import { assertEventually, etcdForFile, unitText } from '../../testkit/index.js';
import { fingerprint, startTestApi, unitDir, type TestApi } from './cli-kit.js';

const server = etcdForFile(test);

const WHY = 'web@1.service failed: exit status 3';
/** What the leader's step (scheduler/rollouts/step.ts) writes when a batch fails. */
const PAUSED = `paused: ${WHY}; fix the file and run flotctl update --force, or flotctl rollback`;

/** web@.service with one started instance, and a v2 file of it in a directory. */
async function submitted(t: ExecutionContext): Promise<{ api: TestApi; v2: string }> {
  const api = await startTestApi(t, server());
  const dir = await unitDir(t, { 'web@.service': unitText({ exec: '/bin/sleep 1000' }) });
  await mkdir(`${dir}/v2`);
  await writeFile(`${dir}/v2/web@.service`, unitText({ exec: '/bin/sleep 2000' }));
  const sub = await api.run(['submit', `${dir}/web@.service`]);
  t.is(sub.code, 0, sub.stderr);
  const start = await api.run(['start', '--no-block', '--allow-pending', 'web@1']);
  t.is(start.code, 0, start.stderr);
  return { api, v2: `${dir}/v2/web@.service` };
}

/** Rewrites the rollout record of web@.service as a leader would. */
async function setRollout(api: TestApi, change: { phase: string; message: string }) {
  const key = api.store.keys.rollout('web@.service');
  const record = await api.store.getRecord(codecs.rollout, key);
  if (record === undefined) throw new Error('no rollout record');
  await api.store.putRecord(codecs.rollout, key, { ...record.value, ...change });
}

test("rollout status writes durations as 0s and 5s, and a pause's reason once", async (t) => {
  const { api, v2 } = await submitted(t);
  const up = await api.run(['update', '--no-block', v2]);
  t.is(up.code, 0, up.stderr);
  await setRollout(api, { phase: 'paused', message: PAUSED });
  const r = await api.run(['rollout', 'status', 'web@.service']);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  t.is(lines[0], 'Rollout of web@.service: paused');
  t.true(
    lines.includes(
      '  Options:     parallelism 1, delay 0s, healthy within 5m, monitor 5s, on failure pause',
    ),
    r.stdout,
  );
  t.true(
    lines.includes(
      `  Message:     ${WHY}; fix the file and run flotctl update --force, or flotctl rollback`,
    ),
    r.stdout,
  );
  t.notRegex(r.stdout, / ms\b|paused: paused/);
});

test('an update that pauses ends with "rollout paused: <why>", the word said once', async (t) => {
  const { api, v2 } = await submitted(t);
  const waiting = api.run(['update', '--timeout', '60s', v2]);
  const key = api.store.keys.rollout('web@.service');
  await assertEventually(
    async () => (await api.store.getRecord(codecs.rollout, key)) !== undefined,
    {
      timeoutMs: 30_000,
      message: 'the update wrote its rollout',
    },
  );
  await setRollout(api, { phase: 'paused', message: PAUSED });
  const r = await waiting;
  t.is(r.code, 1, r.stdout);
  t.is(
    r.stderr,
    `web@.service: rollout paused: ${WHY}; fix the file and run flotctl update --force, or flotctl rollback\n`,
  );
  t.regex(
    r.stdout,
    /^web@\.service: paused, 0\/1 updated, .* \(web@1\.service failed: exit status 3; /m,
  );
  t.notRegex(r.stdout + r.stderr, /paused: paused|\(paused: /);
});

test('a second rollback, back to the file the first rolled back, is refused unless --force', async (t) => {
  const { api, v2 } = await submitted(t);
  const up = await api.run(['update', '--no-block', v2]);
  t.is(up.code, 0, up.stderr);
  await setRollout(api, { phase: 'paused', message: PAUSED });
  const first = await api.run(['rollback', '--no-block', 'web@.service']);
  t.is(first.code, 0, first.stderr);
  const [, from] = /back to (\w+)/.exec(first.stdout) ?? [];
  t.truthy(from, first.stdout);
  const record = await api.store.getRecord(codecs.rollout, api.store.keys.rollout('web@.service'));
  const failedFile = (record?.value.fromHash ?? '').slice(0, 7);
  const before = await fingerprint(api.store);
  const again = await api.run(['rollback', '--no-block', 'web@']);
  t.is(again.code, 1);
  t.is(
    again.stderr,
    `web@.service is being rolled back (running) from ${failedFile} to ${from ?? ''}; rolling back again would return it to ${failedFile}, the file that was rolled back: pass --force to do that, or flotctl update web@.service with a fixed file\n`,
  );
  t.deepEqual(await fingerprint(api.store), before, 'nothing written');
  await setRollout(api, { phase: 'rolled-back', message: 'rolled back' });
  const done = await api.run(['rollback', '--no-block', 'web@']);
  t.is(done.code, 1);
  t.regex(done.stderr, /^web@\.service was rolled back from \w{7} to \w{7}; rolling back again/);
  const forced = await api.run(['rollback', '--force', '--no-block', 'web@']);
  t.is(forced.code, 0, forced.stderr);
  t.is(forced.stdout, `Rolling web@.service back to ${failedFile}\n`);
});

test('update --healthy-deadline is stored in the rollout and shown by rollout status; a bad one writes nothing', async (t) => {
  const { api, v2 } = await submitted(t);
  const before = await fingerprint(api.store);
  for (const bad of ['0s', '2h', 'soon']) {
    const r = await api.run(['update', '--no-block', '--healthy-deadline', bad, v2]);
    t.is(r.code, 2, r.stdout);
    t.regex(
      r.stderr,
      new RegExp(`--healthy-deadline=${bad}: expected a duration of more than 0 and at most 1h`),
    );
  }
  t.deepEqual(await fingerprint(api.store), before, 'nothing was written');
  const up = await api.run(['update', '--no-block', '--healthy-deadline', '90s', v2]);
  t.is(up.code, 0, up.stderr);
  const r = await api.run(['rollout', 'status', 'web@.service']);
  t.regex(r.stdout, /^ {2}Options: {5}parallelism 1, delay 0s, healthy within 1m30s, monitor 5s,/m);
});

test('submit --replace of a template under a running rollout is refused, naming the rollout', async (t) => {
  const { api, v2 } = await submitted(t);
  const up = await api.run(['update', '--no-block', v2]);
  t.is(up.code, 0, up.stderr);
  const before = await fingerprint(api.store);
  const dir = await unitDir(t, { 'web@.service': unitText({ exec: '/bin/sleep 3000' }) });
  const r = await api.run(['submit', '--replace', `${dir}/web@.service`]);
  t.is(r.code, 1, r.stdout);
  t.regex(
    r.stderr,
    /^web@\.service: a rollout of web@\.service to [0-9a-f]{12} is running \(0\/1 updated\), and replacing the file under it would undo or break it: wait for it \(flotctl rollout status web@\.service\), roll it back \(flotctl rollback web@\.service\), or supersede it with this file \(flotctl update --force\)/,
  );
  t.deepEqual(await fingerprint(api.store), before, 'nothing was written');
});

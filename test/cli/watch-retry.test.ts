/**
 * `flotctl watch` when its scheduler goes away and comes back, against the real API server
 * over a real etcd: one short line per retry period on stderr (no gRPC text), naming the
 * revision it resumes from as a number; then the events it missed, from that revision.
 */
import test from 'ava';
import { pino } from 'pino';
import { startApiServer } from '../../scheduler/api/index.js';
import { codecs } from '../../store/index.js';
import { assertEventually, etcdForFile, unitText } from '../../testkit/index.js';
import { addMachine, spawnFlotctl, startTestApi } from './cli-kit.js';

const server = etcdForFile(test);

test('watch against a scheduler that died says so once per retry period, then resumes from revision N', async (t) => {
  const api = await startTestApi(t, server());
  const m = await addMachine(api.store, { addresses: ['10.0.0.1'] });
  const watch = spawnFlotctl(t, ['--endpoint', api.endpoint, 'watch']);
  const deadline = Date.now() + 30_000;
  // The stream is open once a machine change shows up.
  while (!/machine/.test(watch.stdout())) {
    if (Date.now() > deadline) t.fail(`watch printed nothing: ${watch.stderr()}`);
    await addMachine(api.store, { id: m.id, addresses: ['10.0.0.1'] });
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  await api.server.close();
  const down = Date.now();
  // Two retry periods (5 s each) and a little: at most three lines, each one clear sentence.
  await new Promise((resolve) => setTimeout(resolve, 12_000));
  const lines = watch.stderr().trim().split('\n');
  t.true(
    lines.length >= 2 && lines.length <= 4,
    `${Date.now() - down} ms: ${watch.stderr()} / ${watch.stdout()}`,
  );
  const endpoint = api.endpoint.replace(/\./g, '\\.');
  t.regex(
    lines[0] ?? '',
    new RegExp(
      `^watch: lost the Flotilla API at ${endpoint} \\([a-z ]+\\); retrying every 5s, then resuming from revision \\d+$`,
    ),
  );
  for (const line of lines.slice(1)) {
    t.regex(
      line,
      new RegExp(
        `^watch: the Flotilla API at ${endpoint} is still unavailable \\([a-z ]+\\); retrying every 5s, then resuming from revision \\d+$`,
      ),
    );
  }
  t.notRegex(watch.stderr(), /UNAVAILABLE|No connection|Last error|revision now/);
  // The scheduler comes back on the same address: what happened meanwhile is printed.
  const revision = /resuming from revision (\d+)/.exec(lines[0] ?? '')?.[1] ?? '';
  await api.store.putRecord(codecs.unit, api.store.keys.unit('missed.service'), {
    name: 'missed.service',
    file: unitText(),
    hash: 'h',
    desiredState: 'inactive',
  });
  const again = await startApiServer({
    store: api.store,
    listen: api.endpoint,
    logger: pino({ level: 'silent' }),
  });
  t.teardown(() => again.close());
  await assertEventually(() => /missed\.service/.test(watch.stdout()), {
    timeoutMs: 30_000,
    message: `the watch resumed: ${watch.stderr()}`,
  });
  t.regex(watch.stderr(), new RegExp(`^watch: resumed from revision ${revision}$`, 'm'));
  t.log(watch.stderr());
  t.is(await watch.stop('SIGINT'), 0);
});

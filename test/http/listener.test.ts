/**
 * The HTTP listener of a real scheduler replica: `--http-listen` serves the JSON API with
 * /metrics, /healthz and /readyz, `--metrics-listen` is the same listener under its former
 * name, and the two flags given with different addresses are refused.
 */
import test from 'ava';
import { pino } from 'pino';
import { UsageError } from '../../daemon/options.js';
import { startScheduler } from '../../scheduler/main.js';
import { parseSchedulerArgs } from '../../scheduler/options.js';
import { assertEventually, etcdForFile, uniquePrefix } from '../../testkit/index.js';
import { request } from './http-kit.js';

const etcd = etcdForFile(test);

for (const flag of ['--http-listen', '--metrics-listen']) {
  test(`${flag} serves the JSON API, /metrics, /healthz and /readyz on one port`, async (t) => {
    const parsed = parseSchedulerArgs([
      `--etcd-endpoints=${etcd().endpoint}`,
      `--prefix=${uniquePrefix(t.title)}`,
      '--listen=127.0.0.1:0',
      `${flag}=127.0.0.1:0`,
    ]);
    if (parsed.help) throw new Error('unreachable');
    const s = await startScheduler(parsed.options, pino({ level: 'silent' }));
    t.teardown(() => s.close({ resign: true }));
    const base = s.httpUrl ?? '';
    t.is(base, `http://${s.metricsAddress ?? ''}`);
    t.is((await request(base, '/healthz')).status, 200);
    await assertEventually(async () => (await request(base, '/readyz')).status === 200);
    await assertEventually(async () =>
      (await request(base, '/metrics')).text.includes('flotilla_scheduler_leader 1'),
    );
    const units = await request(base, '/api/v1/units');
    t.is(units.status, 200, units.text);
  });
}

test('--http-listen and --metrics-listen with different addresses are refused', (t) => {
  t.throws(
    () => parseSchedulerArgs(['--http-listen=127.0.0.1:4646', '--metrics-listen=127.0.0.1:9470']),
    { instanceOf: UsageError, message: /one listener serves both/ },
  );
});

/**
 * systemd's start limit on a real supervisor, under both drivers: a crash loop (Restart=) and
 * a health loop (HealthOnFailure=restart) end `failed` once a unit starts more than
 * StartLimitBurst= times within StartLimitIntervalSec= (systemd's 5 in 10 s by default), with
 * a message that says so and why it last failed; a limit of 0 is none.
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseUnit } from '../../unit/index.js';
import { unitText } from '../../testkit/index.js';
import { DRIVERS, managed, stateOf, unit } from './harness.js';

const LOOP = `/bin/sh -c 'while true; do sleep 0.1; done'`;
const failed = (s: { activeState: string }): boolean => s.activeState === 'failed';

for (const driver of DRIVERS) {
  test(`${driver}: ExecStart=/bin/false with Restart=always ends failed after 5 restarts (start-limit-hit)`, async (t) => {
    const m = await managed(t, { driver });
    await m.manager.start(
      unit('false.service', '/bin/false', { Restart: 'always', RestartSec: '100ms' }),
    );
    const s = await stateOf(m, 'false.service', failed, 'failed at the start limit');
    t.is(s.subState, 'failed');
    t.is(s.restarts, 5);
    t.regex(
      s.message,
      /^start limit hit: 6 starts within \d+(\.\d)?m?s \(more than StartLimitBurst=5 in StartLimitIntervalSec=10s\); last failure: ExecStart=\/bin\/false \(line \d+\) exited with status 1; fix the unit, then flotctl stop and flotctl start it$/,
    );
    t.regex(s.restartReason, /^ExecStart=\/bin\/false \(line \d+\) exited with status 1$/);
    const seen = m.states.length;
    await sleep(1_500);
    const later = m.states.slice(seen).filter((x) => x.name === 'false.service');
    t.deepEqual(later, [], 'nothing restarts it afterwards');
  });

  test(`${driver}: HealthCmd=/bin/false with HealthOnFailure=restart ends failed at the default start limit`, async (t) => {
    const m = await managed(t, { driver });
    await m.manager.start(
      unit('hc.service', LOOP, {
        HealthCmd: '/bin/false',
        HealthInterval: '200ms',
        HealthRetries: '1',
        HealthOnFailure: 'restart',
      }),
    );
    const s = await stateOf(m, 'hc.service', failed, 'failed at the start limit');
    t.is(s.restarts, 5);
    t.regex(
      s.message,
      /^start limit hit: 6 starts within .*; last failure: unhealthy, health check failed once \(last: exit 1\); HealthOnFailure=restart;/,
    );
    t.regex(s.restartReason, /^unhealthy, health check failed/);
    t.is(s.health, 'unhealthy');
  });
}

test('process: StartLimitIntervalSec= and StartLimitBurst= in [Unit] set the limit; a burst of 0 is none', async (t) => {
  const m = await managed(t, { driver: 'process' });
  const file = (burst: string, interval: string): string =>
    unitText({
      unit: { StartLimitIntervalSec: interval, StartLimitBurst: burst },
      service: { ExecStart: '/bin/false', Restart: 'always', RestartSec: '100ms' },
    });
  await m.manager.start(parseUnit('two.service', file('2', '1min')));
  await m.manager.start(parseUnit('free.service', file('0', '1min')));
  const two = await stateOf(m, 'two.service', failed, 'failed after 2 restarts');
  t.is(two.restarts, 2);
  t.regex(
    two.message,
    /^start limit hit: 3 starts within .* \(more than StartLimitBurst=2 in StartLimitIntervalSec=1m\)/,
  );
  const free = await stateOf(m, 'free.service', (s) => s.restarts >= 7, 'past the default burst');
  t.not(free.activeState, 'failed');
});

test('process: an agent restart gives a crash loop neither a fresh start limit nor a fresh back-off', async (t) => {
  const first = await managed(t, { driver: 'process' });
  const text = unitText({
    unit: { StartLimitIntervalSec: '1min', StartLimitBurst: '4' },
    service: { ExecStart: '/bin/false', Restart: 'always', RestartSec: '1s' },
  });
  await first.manager.start(parseUnit('loop.service', text));
  // Two runs so far, the second restart pending (2 s): the agent goes.
  await stateOf(
    first,
    'loop.service',
    (s) => s.restarts === 2 && s.subState === 'auto-restart',
    'second restart scheduled',
  );
  await first.manager.close();

  const second = await managed(t, {
    driver: 'process',
    stateDir: first.stateDir,
    machineId: first.machineId,
  });
  await second.manager.adopt();
  t.regex(second.states[0]?.restartReason ?? '', /^ExecStart=\/bin\/false .*status 1$/);
  const s = await stateOf(second, 'loop.service', failed, 'failed at the start limit');
  t.is(s.restarts, 4, 'the starts before the agent restart count toward StartLimitBurst=');
  t.regex(s.message, /^start limit hit: 5 starts within /);
  const pauses = second.states
    .filter((x) => x.subState === 'auto-restart')
    .map((x) => /restarting in (\S+)$/.exec(x.message)?.[1]);
  t.is(pauses[0], '2s', 'the back-off doubles on from where it was (1s, 2s), not from 1s');
});

/**
 * Health checks under both runtime drivers: the verdict (starting, healthy, unhealthy), the
 * last output line, a hanging check killed at its timeout, a missing command, and
 * HealthOnFailure= restart and stop.
 */
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DRIVERS, managed, running, stateOf, unit } from './harness.js';

const LOOP = `/bin/sh -c 'while true; do sleep 0.1; done'`;

for (const driver of DRIVERS) {
  test(`${driver}: a passing HealthCmd= makes the unit healthy with its last output line`, async (t) => {
    const m = await managed(t, { driver });
    await m.manager.start(
      unit('ok.service', LOOP, {
        HealthCmd: 'echo first; echo "all good in $PWD"',
        HealthInterval: '300ms',
        WorkingDirectory: '/etc',
      }),
    );
    await running(m, 'ok.service');
    const s = await stateOf(m, 'ok.service', (x) => x.health === 'healthy', 'healthy');
    t.is(s.healthFailures, 0);
    t.is(s.healthChecks.at(-1)?.output, 'all good in /etc');
    t.is(s.healthChecks.at(-1)?.exitStatus, 0);
    const verdicts = m.states.filter((x) => x.name === 'ok.service').map((x) => x.health);
    t.true(verdicts.includes('starting'), `verdicts: ${verdicts.join(',')}`);
  });

  test(`${driver}: a failing check turns unhealthy after HealthRetries=, and healthy again when it passes`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-health-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const flag = join(dir, 'ok');
    const m = await managed(t, { driver });
    await m.manager.start(
      unit('flaky.service', LOOP, {
        HealthCmd: `test -e ${flag} || { echo "no flag at ${flag}"; exit 3; }`,
        HealthInterval: '200ms',
        HealthRetries: '3',
      }),
    );
    const bad = await stateOf(m, 'flaky.service', (x) => x.health === 'unhealthy', 'unhealthy');
    t.true(bad.healthFailures >= 3);
    t.is(bad.healthChecks.at(-1)?.exitStatus, 3);
    t.is(bad.healthChecks.at(-1)?.output, `no flag at ${flag}`);
    t.is(bad.activeState, 'active', 'HealthOnFailure=none leaves it running');
    // A runc unit's /tmp is its own: only a plain process sees the flag the test writes.
    if (driver === 'process') {
      await writeFile(flag, '');
      const good = await stateOf(m, 'flaky.service', (x) => x.health === 'healthy', 'healthy');
      t.is(good.healthFailures, 0);
    }
  });

  test(`${driver}: a hanging check is killed at HealthTimeout= and a missing command says so`, async (t) => {
    const m = await managed(t, { driver });
    await m.manager.start(
      unit('hang.service', LOOP, {
        HealthCmd: 'sleep 30',
        HealthInterval: '200ms',
        HealthTimeout: '300ms',
        HealthRetries: '1',
      }),
    );
    await m.manager.start(
      unit('missing.service', LOOP, {
        HealthCmd: 'no-such-health-tool --check',
        HealthInterval: '200ms',
        HealthRetries: '1',
      }),
    );
    const hang = await stateOf(m, 'hang.service', (x) => x.health === 'unhealthy', 'unhealthy');
    const last = hang.healthChecks.at(-1);
    t.is(last?.exitStatus, -1);
    t.regex(last?.output ?? '', /timed out after HealthTimeout=300 ms/);
    t.true((last?.durationMs ?? 0) < 10_000, `the check took ${last?.durationMs} ms`);
    const missing = await stateOf(
      m,
      'missing.service',
      (x) => x.health === 'unhealthy',
      'unhealthy',
    );
    t.is(missing.healthChecks.at(-1)?.exitStatus, 127);
    t.regex(missing.healthChecks.at(-1)?.output ?? '', /no-such-health-tool.*not found/);
  });

  test(`${driver}: HealthOnFailure=restart restarts an unhealthy unit even with Restart=no`, async (t) => {
    const m = await managed(t, { driver });
    await m.manager.start(
      unit('sick.service', LOOP, {
        HealthCmd: 'echo sick; exit 1',
        HealthInterval: '200ms',
        HealthRetries: '2',
        HealthOnFailure: 'restart',
      }),
    );
    const first = await running(m, 'sick.service');
    const restarted = await stateOf(
      m,
      'sick.service',
      (x) => x.restarts >= 1 && x.activeState === 'active' && x.pid !== first.pid,
      'restarted with a new main process',
    );
    t.true(restarted.restarts >= 1);
    const messages = m.states.filter((x) => x.name === 'sick.service').map((x) => x.message);
    t.true(
      messages.some((x) => /unhealthy.*HealthOnFailure=restart/.test(x)),
      messages.join(' | '),
    );
  });

  test(`${driver}: HealthOnFailure=kill SIGKILLs an unhealthy unit and Restart= decides`, async (t) => {
    const m = await managed(t, { driver });
    await m.manager.start(
      unit('killed.service', LOOP, {
        HealthCmd: 'exit 1',
        HealthInterval: '200ms',
        HealthRetries: '1',
        HealthOnFailure: 'kill',
        Restart: 'on-failure',
      }),
    );
    const s = await stateOf(m, 'killed.service', (x) => x.restarts >= 1, 'restarted after a kill');
    t.true(
      m.states.some((x) => x.name === 'killed.service' && x.exitSignal === 'SIGKILL'),
      'the main process was SIGKILLed',
    );
    t.true(s.restarts >= 1);
  });

  test(`${driver}: HealthOnFailure=stop stops an unhealthy unit for good`, async (t) => {
    const m = await managed(t, { driver });
    await m.manager.start(
      unit('stop.service', LOOP, {
        HealthCmd: 'exit 1',
        HealthInterval: '200ms',
        HealthRetries: '1',
        HealthOnFailure: 'stop',
        Restart: 'always',
      }),
    );
    const s = await stateOf(m, 'stop.service', (x) => x.activeState === 'failed', 'failed');
    t.regex(s.message, /HealthOnFailure=stop/);
    t.is(s.health, 'unhealthy');
    t.is(s.restarts, 0);
  });
}

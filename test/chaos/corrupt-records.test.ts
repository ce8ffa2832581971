/**
 * Chaos: corrupt records. A value that is not the record its key implies is written by hand
 * (etcdctl) under every key kind: units, placements, machines, machine-metadata, states
 * (a stranger's and a running unit's own), unscheduled, control and election. Flotilla
 * promises a corrupt record is logged and skipped, never fatal: every daemon keeps running,
 * flotctl's reads answer, running units keep running, new work is placed, and a unit whose
 * own state was overwritten reports its true state again.
 */
import anyTest, { type TestFn } from 'ava';
import { readFile } from 'node:fs/promises';
import { sleep } from '../../testkit/index.js';
import {
  chaosForFile,
  deadDaemons,
  IDLE_UNIT,
  LEASE_TTL_SECONDS,
  startUnits,
  waitExactlyOnce,
} from './chaos-kit.js';
import { etcdctl } from './faults.js';

const test = anyTest as TestFn;
const { serial, cluster: c } = chaosForFile(test, { name: 'chcorrupt', net: 223, agents: 3 });

const IDLE = Array.from({ length: 4 }, (_, i) => `idle@${i + 1}.service`);

serial('a corrupt record under every key kind is skipped and no daemon dies', async (t) => {
  await startUnits(c(), { 'idle@.service': IDLE_UNIT }, IDLE);
  const p = c().record.prefix;
  const m1 = c().machineOf(1);
  const garbage: Record<string, string> = {
    [`${p}units/corrupt.service`]: 'not json {',
    [`${p}units/corrupt2.service`]: '{"name": 5, "fileText": []}',
    [`${p}placements/${m1}/corrupt.service`]: '{"unit": ',
    [`${p}machines/0123456789abcdef0123456789abcdef`]: '\u0000\u0001binary',
    [`${p}machine-metadata/${m1}`]: '[1, 2, 3]',
    [`${p}states/ghost.service`]: 'null',
    [`${p}states/idle@1.service`]: '{"activeState": {"nested": true}',
    [`${p}unscheduled/ghost.service`]: 'garbage',
    [`${p}control/resume-rescheduling`]: '"a string"',
    [`${p}election/zz-garbage`]: 'not a leader',
  };
  for (const [key, value] of Object.entries(garbage)) {
    const put = await etcdctl(c(), ['put', key], Buffer.from(value));
    t.is(put.code, 0, `etcdctl put ${key}: ${put.stderr}`);
  }
  await sleep(LEASE_TTL_SECONDS * 2 * 1000);

  t.deepEqual(await deadDaemons(c()), [], 'no daemon died');
  for (const verb of [
    ['list-units'],
    ['list-unit-files'],
    ['list-machines'],
    ['status', 'idle@2.service'],
  ]) {
    const run = await c().flotctl(verb);
    t.is(run.code, 0, `flotctl ${verb.join(' ')} answers: ${run.stderr}`);
    if (verb[0] !== 'status') {
      t.regex(run.stderr, /^WARNING: \d+ records in etcd do not decode/m, `${verb[0]} warns`);
      const named = Object.keys(garbage).filter((k) => run.stderr.includes(k));
      t.true(named.length >= 1, `${verb[0]} names corrupt keys: ${run.stderr}`);
    }
  }
  const seconds = await waitExactlyOnce(c(), IDLE, 'exactly once with corrupt records about');
  t.log(`exactly once, idle@1's state repaired, ${seconds.toFixed(1)} s after the corrupt writes`);
  await c().ok(['start', '--no-block', 'idle@5.service']);
  await waitExactlyOnce(c(), [...IDLE, 'idle@5.service'], 'new work is placed');

  const logs = await Promise.all(
    c()
      .record.processes.filter((proc) => proc.role === 'scheduler')
      .map((proc) => readFile(proc.logPath, 'utf8').catch(() => '')),
  );
  const reported = Object.keys(garbage).filter((k) => logs.some((l) => l.includes(k)));
  const unreported = Object.keys(garbage).filter((k) => !reported.includes(k));
  t.log(`keys not named in the schedulers' logs: ${unreported.join(', ') || 'none'}`);
  // Every record that does not decode (wrong JSON types included) is named; the stray
  // election key is no record: leader election passes over it (no lease, not a candidate).
  t.deepEqual(unreported, [`${p}election/zz-garbage`], 'every corrupt record is named in a log');

  for (const key of Object.keys(garbage)) {
    if (key.endsWith('states/idle@1.service')) continue;
    await etcdctl(c(), ['del', key]);
  }
  await sleep(2000);
  t.deepEqual(await deadDaemons(c()), [], 'no daemon died after the clean-up');
  await waitExactlyOnce(c(), [...IDLE, 'idle@5.service'], 'exactly once after the clean-up');
});

/**
 * StartLimitIntervalSec= and StartLimitBurst=: read from [Unit] (systemd's place) and from
 * [Service] (its older one, [Unit] winning); absent when neither is set (the agent then uses
 * systemd's 10 s and 5); bad values named with their line. And how durations are written.
 */
import test from 'ava';
import { parseUnit, validateUnitFile } from '../../unit/index.js';

const service = '[Service]\nExecStart=/bin/true\n';

test('a unit without the keys has no start limit of its own (systemd defaults apply)', (t) => {
  t.is(parseUnit('a.service', service).service.startLimit, undefined);
});

test('[Unit] StartLimitIntervalSec= and StartLimitBurst= set the limit; one alone keeps the other default', (t) => {
  const both = parseUnit(
    'a.service',
    `[Unit]\nStartLimitIntervalSec=1min\nStartLimitBurst=3\n${service}`,
  );
  t.deepEqual(both.service.startLimit, { intervalMs: 60_000, burst: 3 });
  const burst = parseUnit('a.service', `[Unit]\nStartLimitBurst=0\n${service}`);
  t.deepEqual(burst.service.startLimit, { intervalMs: 10_000, burst: 0 });
});

test("systemd's older [Service] StartLimitInterval= is read, and [Unit] wins over it", (t) => {
  const old = parseUnit('a.service', `${service}StartLimitInterval=30s\nStartLimitBurst=2\n`);
  t.deepEqual(old.service.startLimit, { intervalMs: 30_000, burst: 2 });
  const both = parseUnit(
    'a.service',
    `[Unit]\nStartLimitBurst=7\n${service}StartLimitInterval=30s\nStartLimitBurst=2\n`,
  );
  t.deepEqual(both.service.startLimit, { intervalMs: 30_000, burst: 7 });
});

test('bad start limit values are refused with their line and what to write', (t) => {
  const errors = validateUnitFile(
    'a.service',
    `[Unit]\nStartLimitBurst=many\nStartLimitIntervalSec=soon\nStartLimitIntervalSec=infinity\n${service}`,
  );
  t.deepEqual(
    errors.map((e) => `${e.line}: ${e.message}`),
    [
      '2: StartLimitBurst=many: expected a whole number from 0 (no limit) to 10000',
      '3: StartLimitIntervalSec=soon: expected a time span such as 90s, 500ms, 1min 30s or 2h',
      '4: StartLimitIntervalSec=infinity: expected a finite time span such as 10s or 5min (0 turns the limit off)',
    ],
  );
});

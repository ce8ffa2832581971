/** `[X-Fleet] Update*=`: a unit's own defaults for `flotctl update`. */
import test from 'ava';
import { parseUnit, validateUnitFile } from '../../unit/index.js';

const base = '[Service]\nExecStart=/bin/sleep 100\n[X-Fleet]\n';

test('Update*= keys set the defaults of flotctl update; without them there are none', (t) => {
  t.is(parseUnit('web@.service', base).fleet.update, undefined);
  const u = parseUnit(
    'web@.service',
    `${base}UpdateParallelism=2\nUpdateDelaySec=10s\nUpdateMonitorSec=1min\nUpdateFailureAction=rollback\n`,
  );
  t.deepEqual(u.fleet.update, {
    parallelism: 2,
    delayMs: 10_000,
    monitorMs: 60_000,
    failureAction: 'rollback',
  });
  const reset = parseUnit('web@.service', `${base}UpdateParallelism=2\nUpdateParallelism=\n`);
  t.is(reset.fleet.update, undefined, 'an empty value resets the key');
});

test('bad Update*= values are refused with their line', (t) => {
  const cases: [string, RegExp][] = [
    ['UpdateParallelism=0\n', /UpdateParallelism=0: .*1 to 100/],
    ['UpdateDelaySec=2h\n', /UpdateDelaySec=2h: .*at most 1h/],
    ['UpdateMonitorSec=soon\n', /UpdateMonitorSec/],
    ['UpdateFailureAction=retry\n', /pause or rollback/],
    ['UpdateParalelism=2\n', /unknown \[X-Fleet\] key "UpdateParalelism".*UpdateParallelism/],
  ];
  for (const [line, re] of cases) {
    const errors = validateUnitFile('web@.service', base + line);
    t.is(errors.length, 1, line);
    t.is(errors[0]?.line, 4, line);
    t.regex(errors[0]?.message ?? '', re, line);
  }
});

test('UpdateHealthyDeadlineSec= sets how long an updated instance has to become healthy', (t) => {
  const u = parseUnit('web@.service', `${base}UpdateHealthyDeadlineSec=90s\n`);
  t.deepEqual(u.fleet.update, { healthyDeadlineMs: 90_000 });
  const reset = parseUnit(
    'web@.service',
    `${base}UpdateHealthyDeadlineSec=90s\nUpdateHealthyDeadlineSec=\n`,
  );
  t.is(reset.fleet.update, undefined, 'an empty value resets the key');
  const cases: [string, RegExp][] = [
    ['UpdateHealthyDeadlineSec=0\n', /UpdateHealthyDeadlineSec=0: expected .*more than 0/],
    ['UpdateHealthyDeadlineSec=2h\n', /UpdateHealthyDeadlineSec=2h: .*at most 1h/],
    ['UpdateHealthyDeadlineSec=soon\n', /UpdateHealthyDeadlineSec/],
  ];
  for (const [line, re] of cases) {
    const errors = validateUnitFile('web@.service', base + line);
    t.is(errors.length, 1, line);
    t.is(errors[0]?.line, 4, line);
    t.regex(errors[0]?.message ?? '', re, line);
  }
});

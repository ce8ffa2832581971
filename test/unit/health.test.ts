/** Health* keys (podman Quadlet's names) in [Service]: values, defaults and refusals. */
import test from 'ava';
import { parseUnit, validateUnitFile } from '../../unit/index.js';

const base = '[Service]\nExecStart=/bin/sleep 100\n';

test('HealthCmd= and friends give the unit a health check, with podman defaults', (t) => {
  const u = parseUnit('web@7.service', `${base}HealthCmd=wget -q http://127.0.0.1:80%i/\n`);
  t.deepEqual(u.service.health, {
    command: 'wget -q http://127.0.0.1:807/',
    intervalMs: 30_000,
    timeoutMs: 30_000,
    retries: 3,
    startPeriodMs: 0,
    onFailure: 'none',
    line: 3,
  });
  const all = parseUnit(
    'a.service',
    `${base}HealthCmd=true\nHealthInterval=5s\nHealthTimeout=2s\nHealthRetries=4\nHealthStartPeriod=1min\nHealthOnFailure=restart\n`,
  );
  t.like(all.service.health, {
    intervalMs: 5_000,
    timeoutMs: 2_000,
    retries: 4,
    startPeriodMs: 60_000,
    onFailure: 'restart',
  });
});

test('no HealthCmd=, HealthCmd=none and HealthInterval=disable mean no check', (t) => {
  t.is(parseUnit('a.service', base).service.health, undefined);
  t.is(parseUnit('a.service', `${base}HealthCmd=none\n`).service.health, undefined);
  t.is(
    parseUnit('a.service', `${base}HealthCmd=true\nHealthInterval=disable\n`).service.health,
    undefined,
  );
});

test('bad Health* values are refused with their line and what to write instead', (t) => {
  const cases: [string, RegExp][] = [
    [
      'HealthCmd=true\nHealthRetries=-1\n',
      /line 4.*HealthRetries=-1: expected a whole number from 1/,
    ],
    ['HealthCmd=true\nHealthOnFailure=reboot\n', /line 4.*use one of none, kill, restart, stop/],
    ['HealthCmd=true\nHealthInterval=soon\n', /line 4.*HealthInterval/],
    ['HealthCmd=true\nHealthTimeout=0\n', /line 4.*HealthTimeout=0: expected a finite time span/],
    ['HealthRetries=2\n', /line 3.*HealthRetries= is set but there is no HealthCmd=/],
  ];
  for (const [lines, re] of cases) {
    const errors = validateUnitFile('a.service', base + lines);
    t.is(errors.length, 1, lines);
    t.regex(`line ${errors[0]?.line}: ${errors[0]?.message}`, re, lines);
  }
});

test('a HealthCmd= longer than 4096 characters is refused', (t) => {
  const errors = validateUnitFile('a.service', `${base}HealthCmd=${'x'.repeat(5000)}\n`);
  t.regex(errors[0]?.message ?? '', /longer than 4096 characters/);
});

import test from 'ava';

import { UnitError, type UnitErrorCode } from '../../unit/errors.js';
import type { ServiceOptions } from '../../unit/model.js';
import { parseUnit, validateUnitFile } from '../../unit/parse.js';
import { parseCpuQuotaMillicores, parseMemoryBytes, parseTasksMax } from '../../unit/resources.js';
import { signalName } from '../../unit/service.js';
import { parseTimeSpanMs } from '../../unit/values.js';
import { unitText, type SectionValues } from '../../testkit/factories.js';

function service(extra: SectionValues, exec = '/bin/sleep 60'): ServiceOptions {
  return parseUnit('s.service', unitText({ exec, service: extra })).service;
}

function serviceError(text: string): UnitError {
  const errors = validateUnitFile('s.service', text);
  const first = errors[0];
  if (first === undefined) throw new Error('expected a problem');
  return first;
}

test('defaults follow systemd', (t) => {
  const s = service({});
  t.is(s.type, 'simple');
  t.is(s.restart, 'no');
  t.is(s.restartSecMs, 100);
  t.is(s.timeoutStopSecMs, 90_000);
  t.is(s.killSignal, 'SIGTERM');
  t.deepEqual(s.environment, []);
  t.deepEqual(s.resources, { cpuMillicores: 0, memoryBytes: 0, tasks: 0 });
  t.false(s.privateNetwork);
  t.is(s.workingDirectory, '');
});

const keys: readonly (readonly [SectionValues, (s: ServiceOptions) => unknown, unknown])[] = [
  [{ Type: 'exec' }, (s) => s.type, 'exec'],
  [{ Type: 'oneshot' }, (s) => s.type, 'oneshot'],
  [{ Restart: 'always' }, (s) => s.restart, 'always'],
  [{ Restart: 'on-failure' }, (s) => s.restart, 'on-failure'],
  [{ RestartSec: '5' }, (s) => s.restartSecMs, 5000],
  [{ RestartSec: '250ms' }, (s) => s.restartSecMs, 250],
  [{ TimeoutStopSec: '2min' }, (s) => s.timeoutStopSecMs, 120_000],
  [{ TimeoutStopSec: 'infinity' }, (s) => s.timeoutStopSecMs, 0],
  [{ TimeoutSec: '10s' }, (s) => s.timeoutStopSecMs, 10_000],
  [{ KillSignal: 'SIGINT' }, (s) => s.killSignal, 'SIGINT'],
  [{ KillSignal: 'KILL' }, (s) => s.killSignal, 'SIGKILL'],
  [{ KillSignal: '1' }, (s) => s.killSignal, 'SIGHUP'],
  [
    { Environment: ['A=1 "B=two words"', 'C=3'] },
    (s) => s.environment,
    [
      ['A', '1'],
      ['B', 'two words'],
      ['C', '3'],
    ],
  ],
  [{ Environment: ['A=1', '', 'B=2'] }, (s) => s.environment, [['B', '2']]],
  [
    { EnvironmentFile: ['/etc/a.env', '-/etc/b.env'] },
    (s) => s.environmentFiles,
    [
      { path: '/etc/a.env', optional: false },
      { path: '/etc/b.env', optional: true },
    ],
  ],
  [{ WorkingDirectory: '/srv/app' }, (s) => s.workingDirectory, '/srv/app'],
  [{ WorkingDirectory: '-/srv/maybe' }, (s) => s.workingDirectory, '-/srv/maybe'],
  [{ WorkingDirectory: '~' }, (s) => s.workingDirectory, '~'],
  [{ User: 'nobody' }, (s) => s.user, 'nobody'],
  [{ User: '1000' }, (s) => s.user, '1000'],
  [{ RootDirectory: '/var/lib/rootfs' }, (s) => s.rootDirectory, '/var/lib/rootfs'],
  [{ PrivateNetwork: 'yes' }, (s) => s.privateNetwork, true],
  [{ MemoryMax: '64M' }, (s) => s.resources.memoryBytes, 64 * 1024 * 1024],
  [{ MemoryLimit: '1G' }, (s) => s.resources.memoryBytes, 1024 ** 3],
  [{ MemoryMax: ['64M', 'infinity'] }, (s) => s.resources.memoryBytes, 0],
  [{ MemoryMax: ['64M', ''] }, (s) => s.resources.memoryBytes, 0],
  [{ CPUQuota: '25%' }, (s) => s.resources.cpuMillicores, 250],
  [{ TasksMax: '100' }, (s) => s.resources.tasks, 100],
  [{ Description: 'ignored here', Frobnicate: 'yes' }, (s) => s.type, 'simple'],
];

for (const [extra, pick, expected] of keys) {
  test(`[Service] ${JSON.stringify(extra)} is understood`, (t) => {
    t.deepEqual(pick(service(extra)), expected);
  });
}

test('the Exec* lists accumulate and an empty assignment resets them', (t) => {
  const s = service({
    Type: 'oneshot',
    ExecStartPre: ['/bin/a', '/bin/b'],
    ExecStartPost: ['/bin/c', '', '/bin/d'],
    ExecStop: '/bin/e',
    ExecStopPost: '/bin/f',
  });
  t.deepEqual(
    s.execStartPre.map((c) => c.path),
    ['/bin/a', '/bin/b'],
  );
  t.deepEqual(
    s.execStartPost.map((c) => c.path),
    ['/bin/d'],
  );
  t.deepEqual(
    s.execStop.map((c) => c.path),
    ['/bin/e'],
  );
  t.deepEqual(
    s.execStopPost.map((c) => c.path),
    ['/bin/f'],
  );
});

test('Type=oneshot may have several ExecStart lines', (t) => {
  const s = parseUnit(
    'o.service',
    '[Service]\nType=oneshot\nExecStart=/bin/a\nExecStart=/bin/b\n',
  ).service;
  t.deepEqual(
    s.execStart.map((c) => c.path),
    ['/bin/a', '/bin/b'],
  );
});

test('unknown [Service] and [Unit] keys and other sections are ignored, as systemd does', (t) => {
  const text =
    '[Unit]\nAfter=x.service\nWants=y\n[Service]\nExecStart=/bin/true\nNice=5\n[Install]\nWantedBy=multi-user.target\n';
  t.deepEqual(validateUnitFile('s.service', text), []);
});

const bad: readonly (readonly [string, string, UnitErrorCode, RegExp])[] = [
  ['no ExecStart', '[Service]\nType=simple\n', 'missing-value', /no ExecStart=/],
  ['no [Service] at all', '[Unit]\nDescription=x\n', 'missing-value', /no ExecStart=/],
  [
    'two ExecStart without oneshot',
    '[Service]\nExecStart=/bin/a\nExecStart=/bin/b\n',
    'invalid-combination',
    /only Type=oneshot/,
  ],
  [
    'Type=forking',
    '[Service]\nType=forking\nExecStart=/bin/a\n',
    'invalid-value',
    /Type=forking: unsupported; use simple, exec, oneshot/,
  ],
  [
    'Restart=on-abnormal',
    '[Service]\nRestart=on-abnormal\nExecStart=/bin/a\n',
    'invalid-value',
    /not supported by Flotilla/,
  ],
  [
    'Restart=sometimes',
    '[Service]\nRestart=sometimes\nExecStart=/bin/a\n',
    'invalid-value',
    /Restart=sometimes: unknown/,
  ],
  [
    'RestartSec=soon',
    '[Service]\nRestartSec=soon\nExecStart=/bin/a\n',
    'invalid-value',
    /RestartSec=soon: expected a time span/,
  ],
  [
    'RestartSec=infinity',
    '[Service]\nRestartSec=infinity\nExecStart=/bin/a\n',
    'invalid-value',
    /finite/,
  ],
  [
    'KillSignal=SIGNOPE',
    '[Service]\nKillSignal=SIGNOPE\nExecStart=/bin/a\n',
    'invalid-value',
    /KillSignal=SIGNOPE/,
  ],
  [
    'EnvironmentFile relative',
    '[Service]\nEnvironmentFile=a.env\nExecStart=/bin/a\n',
    'invalid-value',
    /absolute path/,
  ],
  [
    'WorkingDirectory relative',
    '[Service]\nWorkingDirectory=srv\nExecStart=/bin/a\n',
    'invalid-value',
    /absolute path/,
  ],
  [
    'RootDirectory relative',
    '[Service]\nRootDirectory=root\nExecStart=/bin/a\n',
    'invalid-value',
    /absolute path/,
  ],
  ['User with a space', '[Service]\nUser=a b\nExecStart=/bin/a\n', 'invalid-value', /User=a b/],
  [
    'PrivateNetwork=sure',
    '[Service]\nPrivateNetwork=sure\nExecStart=/bin/a\n',
    'invalid-value',
    /expected a boolean/,
  ],
  [
    'Environment without =',
    '[Service]\nEnvironment=A\nExecStart=/bin/a\n',
    'invalid-value',
    /"A" is not an assignment/,
  ],
  [
    'Environment bad name',
    '[Service]\nEnvironment=1A=x\nExecStart=/bin/a\n',
    'invalid-value',
    /"1A" is not a valid variable name/,
  ],
];

for (const [what, text, code, message] of bad) {
  test(`[Service] with ${what} is rejected (${code})`, (t) => {
    const err = serviceError(text);
    t.is(err.code, code);
    t.regex(err.message, message);
  });
}

const memory: readonly (readonly [string, number])[] = [
  ['1', 1],
  ['1024', 1024],
  ['1K', 1024],
  ['64M', 64 * 1024 ** 2],
  ['1.5G', 1.5 * 1024 ** 3],
  ['2T', 2 * 1024 ** 4],
  ['infinity', 0],
];
for (const [text, bytes] of memory) {
  test(`MemoryMax=${text} is ${bytes} bytes`, (t) => {
    t.is(parseMemoryBytes('MemoryMax', text, 1), bytes);
  });
}

for (const text of ['lots', '', '64MB', '64m', '-1M', '0', '1X', '50%', '.5G']) {
  test(`MemoryMax=${text} is refused with a message naming key and value`, (t) => {
    const err = t.throws(() => parseMemoryBytes('MemoryMax', text, 7), { instanceOf: UnitError });
    t.is(err?.code, 'invalid-value');
    t.is(err?.line, 7);
    t.true(err?.message.startsWith(`MemoryMax=${text}: expected`));
  });
}

test('the MemoryMax=lots message is the documented one', (t) => {
  t.throws(() => parseMemoryBytes('MemoryMax', 'lots', 1), {
    message: 'MemoryMax=lots: expected bytes with an optional K, M, G or T suffix, or infinity',
  });
});

for (const [text, millicores] of [
  ['25%', 250],
  ['100%', 1000],
  ['200%', 2000],
  ['12.5%', 125],
  ['0.1%', 1],
] as const) {
  test(`CPUQuota=${text} is ${millicores} millicores`, (t) => {
    t.is(parseCpuQuotaMillicores('CPUQuota', text, 1), millicores);
  });
}

for (const text of ['25', 'half', '0%', '%', '-5%', '25 %x']) {
  test(`CPUQuota=${text} is refused`, (t) => {
    t.throws(() => parseCpuQuotaMillicores('CPUQuota', text, 1), {
      instanceOf: UnitError,
      message: /^CPUQuota=/,
    });
  });
}

test('TasksMax takes a count or infinity, nothing else', (t) => {
  t.is(parseTasksMax('TasksMax', '512', 1), 512);
  t.is(parseTasksMax('TasksMax', 'infinity', 1), 0);
  for (const bad of ['0', 'many', '10%', '-1', '1.5']) {
    t.throws(
      () => parseTasksMax('TasksMax', bad, 1),
      { instanceOf: UnitError, message: /^TasksMax=/ },
      bad,
    );
  }
});

const spans: readonly (readonly [string, number | undefined])[] = [
  ['5', 5000],
  ['5s', 5000],
  ['500ms', 500],
  ['1min 30s', 90_000],
  ['1min30s', 90_000],
  ['2h', 7_200_000],
  ['1.5s', 1500],
  ['1d', 86_400_000],
  ['1w', 604_800_000],
  ['3 seconds', 3000],
  ['2m', 120_000],
  ['1us', 1],
  ['0', 0],
  [' 10s ', 10_000],
  ['infinity', Infinity],
  ['', undefined],
  ['soon', undefined],
  ['5x', undefined],
  ['5sx', undefined],
  ['-5s', undefined],
  ['s', undefined],
  ['1e3', undefined],
];
for (const [text, ms] of spans) {
  test(`time span ${JSON.stringify(text)} is ${String(ms)}`, (t) => {
    t.is(parseTimeSpanMs(text), ms);
  });
}

test('signal names and numbers normalise to the SIGXXX form', (t) => {
  t.is(signalName('SIGTERM'), 'SIGTERM');
  t.is(signalName('term'), 'SIGTERM');
  t.is(signalName('15'), 'SIGTERM');
  t.is(signalName('9'), 'SIGKILL');
  t.is(signalName('SIGIOT'), 'SIGABRT');
  t.is(signalName('0'), undefined);
  t.is(signalName('64'), undefined);
  t.is(signalName('SIGFOO'), undefined);
});

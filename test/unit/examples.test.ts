import { readdirSync, readFileSync } from 'node:fs';

import test from 'ava';

import type { UnitErrorCode } from '../../unit/errors.js';
import { parseUnit, validateUnitFile } from '../../unit/parse.js';

import { EXAMPLES } from '../../testkit/examples.js';

export const BAD = `${EXAMPLES}bad/`;

const good = readdirSync(EXAMPLES).filter((f) => f.endsWith('.service'));
const bad = readdirSync(BAD).filter((f) => !f.startsWith('.'));

test('the example corpus is where the tests expect it', (t) => {
  t.true(good.length >= 8, `found ${good.length} examples in ${EXAMPLES}`);
  t.true(bad.length >= 9, `found ${bad.length} bad examples in ${BAD}`);
});

for (const file of good) {
  test(`example ${file} is valid`, (t) => {
    t.deepEqual(
      validateUnitFile(file, readFileSync(EXAMPLES + file, 'utf8')).map(
        (e) => `${e.line}: ${e.message}`,
      ),
      [],
    );
  });
}

/** What each bad example's first problem must mention, and on which line (0: none). */
const expected: Readonly<Record<string, readonly [UnitErrorCode, number, RegExp]>> = {
  'bad name!.service': ['invalid-name', 0, /invalid unit name "bad name!.service".*" ", "!"/],
  'bad-memory.service': ['invalid-value', 3, /MemoryMax=lots/],
  'global-with-machineof.service': [
    'invalid-combination',
    5,
    /MachineOf= cannot be combined with Global=/,
  ],
  'machineid-with-conflicts.service': [
    'invalid-combination',
    3,
    /Conflicts= cannot be combined with MachineID=/,
  ],
  'metadata-without-value.service': ['missing-value', 4, /MachineMetadata="region" has no value/],
  'no-section.service': ['syntax', 1, /before the first \[Section\]/],
  'self-peer.service': [
    'invalid-combination',
    5,
    /MachineOf=self-peer.service is matched by this unit's own Conflicts=self-\*/,
  ],
  'unknown-xfleet-key.service': [
    'unknown-key',
    4,
    /unknown \[X-Fleet\] key "Conflict" \(did you mean "Conflicts"\?\)/,
  ],
  'unterminated-section.service': ['syntax', 1, /"\[Service" is missing its closing "\]"/],
};

for (const file of bad) {
  test(`bad example ${file} is rejected with a message naming the problem`, (t) => {
    const text = readFileSync(BAD + file, 'utf8');
    const errors = validateUnitFile(file, text);
    const first = errors[0];
    if (first === undefined) return t.fail('accepted a bad example');
    t.throws(() => parseUnit(file, text), { message: first.message });
    const want = expected[file];
    if (want === undefined) {
      // A bad example added after this test was written: it must still be rejected clearly.
      t.true(first.message.length > 10);
      return;
    }
    const [code, line, message] = want;
    t.is(first.code, code);
    t.is(first.line, line);
    t.regex(first.message, message);
    t.is(first.file, file);
  });
}

test('web@.service parses for an instance with resources, environment and restart', (t) => {
  const u = parseUnit('web@3.service', readFileSync(`${EXAMPLES}web@.service`, 'utf8'));
  t.is(u.description, 'Web server instance 3');
  t.deepEqual(u.service.resources, { cpuMillicores: 250, memoryBytes: 64 * 1024 * 1024, tasks: 0 });
  t.deepEqual(u.service.environment, [['PORT', '8080']]);
  t.is(u.service.restart, 'on-failure');
  t.is(u.service.restartSecMs, 1000);
  t.deepEqual(u.fleet.conflicts, ['web@*.service']);
  t.true(u.name.isInstance);
});

test('legacy-sidekick@.service: the old option names mean the new ones', (t) => {
  const u = parseUnit(
    'legacy-sidekick@2.service',
    readFileSync(`${EXAMPLES}legacy-sidekick@.service`, 'utf8'),
  );
  t.deepEqual(u.fleet.machineOf, ['web@2.service']);
  t.deepEqual(u.fleet.conflicts, ['legacy-sidekick@*.service']);
});

test('db.service: quoted multi-value metadata is AND across keys, OR within one', (t) => {
  const u = parseUnit('db.service', readFileSync(`${EXAMPLES}db.service`, 'utf8'));
  t.deepEqual(
    u.fleet.machineMetadata,
    new Map([
      ['disk', ['ssd']],
      ['region', ['eu', 'us']],
    ]),
  );
});

test('api@.service, node-monitor.service and batch-once.service carry their options', (t) => {
  const api = parseUnit('api@1.service', readFileSync(`${EXAMPLES}api@.service`, 'utf8'));
  t.is(api.fleet.spreadBy, 'zone');
  t.is(api.fleet.maxPerMachine, 2);
  t.is(api.service.resources.cpuMillicores, 500);
  const mon = parseUnit(
    'node-monitor.service',
    readFileSync(`${EXAMPLES}node-monitor.service`, 'utf8'),
  );
  t.true(mon.fleet.global);
  t.deepEqual(mon.fleet.machineMetadata, new Map([['role', ['worker']]]));
  const batch = parseUnit(
    'batch-once.service',
    readFileSync(`${EXAMPLES}batch-once.service`, 'utf8'),
  );
  t.is(batch.service.type, 'oneshot');
});

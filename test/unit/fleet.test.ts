import test from 'ava';

import { UnitError, type UnitErrorCode } from '../../unit/errors.js';
import type { FleetOptions } from '../../unit/model.js';
import { parseUnit, validateUnitFile } from '../../unit/parse.js';
import { unitText, type SectionValues } from '../../testkit/factories.js';

function fleet(xfleet: SectionValues, name = 'u.service'): FleetOptions {
  return parseUnit(name, unitText({ xfleet })).fleet;
}

function fleetError(xfleet: SectionValues, name = 'u.service'): UnitError {
  try {
    parseUnit(name, unitText({ xfleet }));
  } catch (err) {
    if (err instanceof UnitError) return err;
    throw err;
  }
  throw new Error('expected a UnitError');
}

const keys: readonly (
  | readonly [string, SectionValues, Partial<FleetOptions>]
  | readonly [string, SectionValues, Partial<FleetOptions>, string]
)[] = [
  ['MachineID', { MachineID: 'abc123' }, { machineId: 'abc123' }],
  ['X-ConditionMachineID', { 'X-ConditionMachineID': 'abc' }, { machineId: 'abc' }],
  ['X-ConditionMachineBootID', { 'X-ConditionMachineBootID': 'boot1' }, { machineId: 'boot1' }],
  ['MachineOf', { MachineOf: 'db.service' }, { machineOf: ['db.service'] }],
  ['X-ConditionMachineOf', { 'X-ConditionMachineOf': 'db.service' }, { machineOf: ['db.service'] }],
  ['Conflicts', { Conflicts: 'web@*.service' }, { conflicts: ['web@*.service'] }],
  ['X-Conflicts', { 'X-Conflicts': 'web@*.service' }, { conflicts: ['web@*.service'] }],
  [
    'Conflicts (several on a line)',
    { Conflicts: 'a.service  b@*.service' },
    { conflicts: ['a.service', 'b@*.service'] },
  ],
  ['Global', { Global: 'true' }, { global: true }],
  [
    'Replaces',
    { Replaces: 'old@*.service new.service' },
    { replaces: ['old@*.service', 'new.service'] },
  ],
  ['MaxPerMachine', { MaxPerMachine: '2' }, { maxPerMachine: 2 }],
  ['MaxInstances (in a template)', { MaxInstances: '50' }, { maxInstances: 50 }, 'web@.service'],
  ['MaxInstances (in an instance)', { MaxInstances: '1' }, { maxInstances: 1 }, 'web@3.service'],
  ['MaxInstances= resets it', { MaxInstances: ['50', ''] }, { maxInstances: 0 }, 'web@.service'],
  ['SpreadBy', { SpreadBy: 'zone' }, { spreadBy: 'zone' }],
  ['StopOnDisconnect', { StopOnDisconnect: '30s' }, { stopOnDisconnectMs: 30_000 }],
  ['StopOnDisconnect=1min 30s', { StopOnDisconnect: '1min 30s' }, { stopOnDisconnectMs: 90_000 }],
  [
    'StopOnDisconnect=infinity means never',
    { StopOnDisconnect: 'infinity' },
    { stopOnDisconnectMs: 0 },
  ],
];

for (const [what, xfleet, expected, name] of keys) {
  test(`[X-Fleet] ${what} is understood`, (t) => {
    const f = fleet(xfleet, name);
    for (const [k, v] of Object.entries(expected)) t.deepEqual(f[k as keyof FleetOptions], v, k);
  });
}

test('defaults: nothing constrained', (t) => {
  t.deepEqual(fleet({}), {
    machineId: '',
    machineMetadata: new Map(),
    machineOf: [],
    conflicts: [],
    global: false,
    replaces: [],
    maxPerMachine: 0,
    maxInstances: 0,
    spreadBy: '',
    stopOnDisconnectMs: 0,
  });
});

test('MachineMetadata: AND across keys, OR within one, from any mix of forms', (t) => {
  const f = fleet({
    MachineMetadata: ['"disk=ssd" "region=eu"', 'region=us', 'X=1 Y=2'],
    'X-ConditionMachineMetadata': 'region=ap',
  });
  t.deepEqual(
    f.machineMetadata,
    new Map([
      ['disk', ['ssd']],
      ['region', ['eu', 'us', 'ap']],
      ['X', ['1']],
      ['Y', ['2']],
    ]),
  );
});

test('MachineMetadata: a quoted value may hold spaces', (t) => {
  t.deepEqual(
    fleet({ MachineMetadata: '"room=big hall"' }).machineMetadata,
    new Map([['room', ['big hall']]]),
  );
});

test('repeated list keys accumulate and an empty assignment resets the list', (t) => {
  const f = fleet({
    Conflicts: ['a.service', 'b.service', '', 'c.service'],
    MachineOf: ['x.service', ''],
  });
  t.deepEqual(f.conflicts, ['c.service']);
  t.deepEqual(f.machineOf, []);
});

test('an alias and its new name add to the same list', (t) => {
  t.deepEqual(fleet({ Conflicts: 'a.service', 'X-Conflicts': 'b.service' }).conflicts, [
    'a.service',
    'b.service',
  ]);
});

test('an empty assignment resets scalar keys to their defaults', (t) => {
  const f = fleet({
    MachineID: ['abc', ''],
    Global: ['yes', ''],
    MaxPerMachine: ['3', ''],
    SpreadBy: ['zone', ''],
  });
  t.is(f.machineId, '');
  t.false(f.global);
  t.is(f.maxPerMachine, 0);
  t.is(f.spreadBy, '');
});

for (const [text, value] of [
  ['yes', true],
  ['no', false],
  ['true', true],
  ['false', false],
  ['on', true],
  ['off', false],
  ['1', true],
  ['0', false],
  ['TRUE', true],
] as const) {
  test(`Global=${text} is ${value}`, (t) => {
    t.is(fleet({ Global: text }).global, value);
  });
}

test('specifiers expand in [X-Fleet] values for the instance being parsed', (t) => {
  const f = fleet({ MachineOf: 'web@%i.service', Conflicts: '%p@*.service' }, 'side@7.service');
  t.deepEqual(f.machineOf, ['web@7.service']);
  t.deepEqual(f.conflicts, ['side@*.service']);
});

const badValues: readonly (readonly [SectionValues, UnitErrorCode, RegExp])[] = [
  [{ Global: 'maybe' }, 'invalid-value', /Global=maybe: expected a boolean/],
  [{ MaxPerMachine: 'two' }, 'invalid-value', /MaxPerMachine=two: expected a whole number/],
  [{ MaxPerMachine: '-1' }, 'invalid-value', /MaxPerMachine=-1/],
  [{ MaxInstances: '0' }, 'invalid-value', /MaxInstances=0: expected a whole number from 1 to/],
  [{ MaxInstances: '1000001' }, 'invalid-value', /MaxInstances=1000001: .* to 1000000/],
  [{ MaxInstances: 'lots' }, 'invalid-value', /MaxInstances=lots/],
  [{ SpreadBy: 'zone region' }, 'invalid-value', /one machine metadata key/],
  [{ StopOnDisconnect: 'soon' }, 'invalid-value', /StopOnDisconnect=soon: expected a time span/],
  [{ MachineOf: 'not a unit' }, 'invalid-value', /MachineOf=: invalid unit name "not"/],
  [{ Conflicts: 'web@[.service' }, 'invalid-glob', /Conflicts=: invalid glob "web@\[.service"/],
  [{ Replaces: 'x[]' }, 'invalid-glob', /Replaces=: invalid glob/],
  [{ MachineMetadata: 'region' }, 'missing-value', /MachineMetadata="region" has no value/],
  [{ MachineMetadata: 'region=' }, 'missing-value', /has no value/],
  [{ MachineMetadata: '=eu' }, 'invalid-value', /non-empty key/],
  [{ MachineMetadata: '"region=eu' }, 'invalid-value', /unclosed double quote/],
];

for (const [xfleet, code, message] of badValues) {
  test(`[X-Fleet] ${JSON.stringify(xfleet)} is rejected (${code})`, (t) => {
    const err = fleetError(xfleet);
    t.is(err.code, code);
    t.regex(err.message, message);
    t.true(err.line > 0);
  });
}

test('MaxInstances= in a plain unit is an error: it bounds the instances of a template', (t) => {
  const err = fleetError({ MaxInstances: '5' }, 'db.service');
  t.is(err.code, 'invalid-combination');
  t.regex(err.message, /^MaxInstances= bounds the instances of a template, and db\.service is not/);
  t.is(err.line, 8);
});

test('an unknown [X-Fleet] key is an error that suggests the near one', (t) => {
  const err = fleetError({ Conflict: 'web@*.service' });
  t.is(err.code, 'unknown-key');
  t.is(err.message, 'unknown [X-Fleet] key "Conflict" (did you mean "Conflicts"?)');
  t.regex(fleetError({ machineid: 'x' }).message, /did you mean "MachineID"/);
  t.is(fleetError({ Flavour: 'x' }).message, 'unknown [X-Fleet] key "Flavour"');
});

const combinations: readonly (readonly [string, SectionValues])[] = [
  ['MachineID with MachineOf', { MachineID: 'abc', MachineOf: 'db.service' }],
  ['MachineID with Conflicts', { MachineID: 'abc', Conflicts: 'x.service' }],
  ['MachineID with Global', { MachineID: 'abc', Global: 'true' }],
  ['MachineID with Replaces', { MachineID: 'abc', Replaces: 'x.service' }],
  ['Global with MachineOf', { Global: 'true', MachineOf: 'db.service' }],
  ['Global with Replaces', { Global: 'true', Replaces: 'x.service' }],
  ['Conflicts with Replaces', { Conflicts: 'x.service', Replaces: 'y.service' }],
  [
    'old names: X-ConditionMachineID with X-Conflicts',
    { 'X-ConditionMachineID': 'a', 'X-Conflicts': 'x.service' },
  ],
];

for (const [what, xfleet] of combinations) {
  test(`${what} is an invalid combination pointing at the later line`, (t) => {
    const err = fleetError(xfleet);
    t.is(err.code, 'invalid-combination');
    const [first, second] = Object.keys(xfleet).map((k) => k.replace(/^X-(Condition)?/, ''));
    t.regex(
      err.message,
      new RegExp(`${second}= cannot be combined with ${first}= \\(line \\d+\\)`),
    );
    // unitText writes [Unit] (2 lines), a blank, [Service] (2 lines), a blank, [X-Fleet]: lines 8, 9.
    t.is(err.line, 9);
  });
}

test('a MachineOf peer matched by its own Conflicts or Replaces is invalid', (t) => {
  const c = fleetError({ MachineOf: 'db.service', Conflicts: 'd*.service' });
  t.is(c.code, 'invalid-combination');
  t.regex(c.message, /MachineOf=db.service is matched by this unit's own Conflicts=d\*.service/);
  const r = fleetError({ MachineOf: 'web@%i.service', Replaces: 'web@*.service' }, 'p@1.service');
  t.regex(
    r.message,
    /MachineOf=web@1.service is matched by this unit's own Replaces=web@\*.service/,
  );
});

test('a Global=false does not clash with anything', (t) => {
  t.notThrows(() => fleet({ Global: 'false', MachineOf: 'db.service', Replaces: 'x.service' }));
});

test('compatible constraints are accepted together', (t) => {
  const f = fleet({ Global: 'yes', MachineMetadata: 'role=worker', Conflicts: 'other.service' });
  t.true(f.global);
  const g = fleet({
    MachineOf: 'db.service',
    Conflicts: 'web@*.service',
    MaxPerMachine: '1',
    SpreadBy: 'zone',
  });
  t.deepEqual(g.machineOf, ['db.service']);
});

test('validateUnitFile reports independent problems together, in line order', (t) => {
  const text = unitText({ xfleet: { Conflict: 'x', Global: 'maybe', MaxPerMachine: 'many' } });
  const errors = validateUnitFile('u.service', text);
  t.deepEqual(
    errors.map((e) => e.code),
    ['unknown-key', 'invalid-value', 'invalid-value'],
  );
  t.deepEqual(
    errors.map((e) => e.line),
    [8, 9, 10],
  );
  t.true(errors.every((e) => e.file === 'u.service'));
});

import test from 'ava';

import { UnitError } from '../../unit/errors.js';
import { instanceName, isValidUnitName, parseUnitName, UNIT_TYPES } from '../../unit/names.js';
import { expandSpecifiers } from '../../unit/specifiers.js';

test('a plain name has a prefix and a type, no instance', (t) => {
  t.deepEqual(parseUnitName('db.service'), {
    name: 'db.service',
    prefix: 'db',
    instance: '',
    type: 'service',
    isTemplate: false,
    isInstance: false,
    template: '',
  });
});

test('a template has an empty instance and names itself as template', (t) => {
  const n = parseUnitName('web@.service');
  t.true(n.isTemplate);
  t.false(n.isInstance);
  t.is(n.prefix, 'web');
  t.is(n.template, 'web@.service');
});

test('an instance names its template; dots in the instance are allowed', (t) => {
  const n = parseUnitName('web@1.2.service');
  t.true(n.isInstance);
  t.is(n.instance, '1.2');
  t.is(n.template, 'web@.service');
  t.is(n.type, 'service');
});

for (const type of UNIT_TYPES) {
  test(`the unit type .${type} is accepted`, (t) => {
    t.true(isValidUnitName(`x.${type}`));
  });
}

test('every allowed character is accepted', (t) => {
  t.true(isValidUnitName('aZ09:_.-x@i:_.-.service'));
});

test('a name of exactly 256 characters is accepted, 257 is not', (t) => {
  const at = (n: number): string => `${'a'.repeat(n - '.service'.length)}.service`;
  t.true(isValidUnitName(at(256)));
  const err = t.throws(() => parseUnitName(at(257)), { instanceOf: UnitError });
  t.regex(err?.message ?? '', /257 characters long, at most 256/);
});

const invalid: readonly (readonly [string, RegExp])[] = [
  ['', /empty/],
  ['bad name!.service', /" ", "!" are not allowed/],
  ['web.unknown', /must end in a unit type/],
  ['noext', /must end in a unit type/],
  ['.service', /empty/],
  ['@3.service', /empty/],
  ['web/1.service', /"\/" is not allowed/],
  ['wéb.service', /"é" is not allowed/],
];

for (const [name, message] of invalid) {
  test(`the name ${JSON.stringify(name)} is rejected with code invalid-name`, (t) => {
    const err = t.throws(() => parseUnitName(name), { instanceOf: UnitError });
    t.is(err?.code, 'invalid-name');
    t.regex(err?.message ?? '', message);
    t.false(isValidUnitName(name));
  });
}

test('instanceName builds an instance of a template', (t) => {
  t.is(instanceName('web@.service', '3'), 'web@3.service');
  t.is(instanceName('web@.timer', 'a.b'), 'web@a.b.timer');
});

test('instanceName refuses non-templates, empty and invalid instances', (t) => {
  t.throws(() => instanceName('web.service', '3'), {
    instanceOf: UnitError,
    message: /not a template/,
  });
  t.throws(() => instanceName('web@3.service', '4'), { instanceOf: UnitError });
  t.throws(() => instanceName('web@.service', ''), { instanceOf: UnitError });
  t.throws(() => instanceName('web@.service', 'a b'), { instanceOf: UnitError });
});

const specifiers: readonly (readonly [string, string, string])[] = [
  ['web@3.service', '%n', 'web@3.service'],
  ['web@3.service', '%N', 'web@3'],
  ['web@3.service', '%p', 'web'],
  ['web@3.service', '%i', '3'],
  ['web@3.service', '%%', '%'],
  ['web@3.service', '100%% of %i', '100% of 3'],
  ['web@3.service', '%%i', '%i'],
  ['web@3.service', '%H and %m stay', '%H and %m stay'],
  ['web@3.service', 'trailing %', 'trailing %'],
  ['web@.service', 'web@%i.service', 'web@.service'],
  ['db.service', '%p/%i/%N', 'db//db'],
];

for (const [name, input, output] of specifiers) {
  test(`in ${name}, ${JSON.stringify(input)} expands to ${JSON.stringify(output)}`, (t) => {
    t.is(expandSpecifiers(input, parseUnitName(name)), output);
  });
}

import test from 'ava';

import { UnitError } from '../../unit/errors.js';
import { compileGlob, isGlob } from '../../unit/glob.js';

const matches: readonly (readonly [string, string, boolean])[] = [
  ['web@*.service', 'web@3.service', true],
  ['web@*.service', 'web@.service', true],
  ['web@*.service', 'api@3.service', false],
  ['web@*.service', 'web@3.socket', false],
  ['*', 'anything.service', true],
  ['*', '', true],
  ['a?c.service', 'abc.service', true],
  ['a?c.service', 'ac.service', false],
  ['a?c.service', 'abbc.service', false],
  ['[abc]x', 'bx', true],
  ['[abc]x', 'dx', false],
  ['[a-c]x', 'cx', true],
  ['[^a-c]x', 'dx', true],
  ['[^a-c]x', 'ax', false],
  ['[!a-c]x', 'ax', false],
  ['[\\]]', ']', true],
  ['\\*', '*', true],
  ['\\*', 'a', false],
  ['*a*b', 'xaxxb', true],
  ['*a*b', 'xaxxbc', false],
  ['a*b*c*d', 'a-b-c-d-', false],
  ['a*b*c*d', 'a-b-c-d', true],
  ['exact.service', 'exact.service', true],
  ['exact.service', 'exact.service2', false],
  ['*/x', 'a/x', true],
  ['*x', 'a/x', false],
  ['[z-a]', 'm', false],
  ['[😀]x', '😀x', true],
  ['?x', '😀x', true],
  ['[^a]', '😀', true],
];

for (const [pattern, name, expected] of matches) {
  test(`glob ${JSON.stringify(pattern)} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(name)}`, (t) => {
    t.is(compileGlob(pattern).test(name), expected);
  });
}

test('literalPrefix is the text before the first metacharacter', (t) => {
  t.is(compileGlob('web@*.service').literalPrefix, 'web@');
  t.is(compileGlob('*.service').literalPrefix, '');
  t.is(compileGlob('db.service').literalPrefix, 'db.service');
  t.is(compileGlob('a\\*b*').literalPrefix, 'a*b');
  t.is(compileGlob('ab[cd]').literalPrefix, 'ab');
});

test('isGlob is true exactly when a metacharacter appears', (t) => {
  t.false(isGlob('web@3.service'));
  t.true(isGlob('web@*.service'));
  t.true(isGlob('web@?.service'));
  t.true(isGlob('web@[12].service'));
  t.true(isGlob('web\\@.service'));
});

for (const bad of ['[', '[a-', '[]', 'a\\', '[a', 'x[^]']) {
  test(`malformed glob ${JSON.stringify(bad)} is rejected with code invalid-glob`, (t) => {
    const err = t.throws(() => compileGlob(bad), { instanceOf: UnitError });
    t.is(err?.code, 'invalid-glob');
    t.true(err?.message.includes(bad));
  });
}

test('compiling the same pattern twice returns the cached glob', (t) => {
  t.is(compileGlob('cache-me@*.service'), compileGlob('cache-me@*.service'));
});

test('matching a star-heavy pattern against a long name stays fast', (t) => {
  const g = compileGlob('*a*a*a*a*a*a*a*a*b');
  const name = 'a'.repeat(256);
  const started = process.hrtime.bigint();
  t.false(g.test(name));
  t.true(Number(process.hrtime.bigint() - started) / 1e6 < 1000);
});

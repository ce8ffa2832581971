import test from 'ava';

import { UnitError } from '../../unit/errors.js';
import { hashUnitText } from '../../unit/hash.js';
import { parseUnit } from '../../unit/parse.js';

const base = '[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/sleep 60\nMemoryMax=64M\n';

test('the hash is sha256 hex and the same text always hashes alike', (t) => {
  const h = hashUnitText(base);
  t.regex(h, /^[0-9a-f]{64}$/);
  t.is(hashUnitText(base), h);
  t.is(parseUnit('a.service', base).hash, h);
});

test('the hash is pinned: changing it invalidates every stored unit, so it must be deliberate', (t) => {
  t.is(
    hashUnitText('[Service]\nExecStart=/bin/true\n'),
    hashUnitText('[Service]\nExecStart=/bin/true'),
  );
  t.is(hashUnitText(base), 'ca7b8833c909f1a3dce74a0e0c1fc81c0eebdfb908110eb800bd677f1f8e8cd9');
});

const same: readonly (readonly [string, string])[] = [
  ['comments added', `# header\n${base.replace('[Service]', '[Service]\n; note')}`],
  ['blank lines added', `\n\n${base.replace('\n[Service]', '\n\n\n[Service]')}`],
  ['whitespace around keys and values', base.replace('MemoryMax=64M', '  MemoryMax =  64M   ')],
  ['CRLF line endings', base.replace(/\n/g, '\r\n')],
];

for (const [what, text] of same) {
  test(`${what}: the hash does not change`, (t) => {
    t.is(hashUnitText(text), hashUnitText(base));
  });
}

const different: readonly (readonly [string, string])[] = [
  ['a value changed', base.replace('64M', '65M')],
  ['a key changed', base.replace('MemoryMax', 'MemoryLimit')],
  ['a section renamed', base.replace('[Unit]', '[Unt]')],
  ['an entry added', `${base}CPUQuota=10%\n`],
  [
    'entries reordered',
    base.replace(
      'ExecStart=/bin/sleep 60\nMemoryMax=64M',
      'MemoryMax=64M\nExecStart=/bin/sleep 60',
    ),
  ],
  [
    'an entry moved to another section',
    base.replace('Description=x\n', '').replace('MemoryMax=64M', 'MemoryMax=64M\nDescription=x'),
  ],
  ['inner whitespace of a value', base.replace('/bin/sleep 60', '/bin/sleep  60')],
];

for (const [what, text] of different) {
  test(`${what}: the hash changes`, (t) => {
    t.not(hashUnitText(text), hashUnitText(base));
  });
}

test('every instance of a template shares the template file hash', (t) => {
  const text = '[Service]\nExecStart=/bin/echo %i\n';
  const template = parseUnit('w@.service', text).hash;
  t.is(parseUnit('w@1.service', text).hash, template);
  t.is(parseUnit('w@2.service', text).hash, template);
});

test('hashing text that does not parse throws a syntax UnitError', (t) => {
  const err = t.throws(() => hashUnitText('[Service\n'), { instanceOf: UnitError });
  t.is(err?.code, 'syntax');
});

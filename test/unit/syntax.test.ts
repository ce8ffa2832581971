import test from 'ava';

import { MAX_PROBLEMS, UnitError } from '../../unit/errors.js';
import { validateUnitFile } from '../../unit/parse.js';
import { parseSyntax, parseSyntaxCollecting, sectionEntries } from '../../unit/syntax.js';

test('sections and entries keep file order and 1-based lines', (t) => {
  const s = parseSyntax('[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/true\n');
  t.deepEqual(
    s.sections.map((x) => [x.name, x.line]),
    [
      ['Unit', 1],
      ['Service', 4],
    ],
  );
  t.deepEqual(s.sections[1]?.entries, [{ key: 'ExecStart', value: '/bin/true', line: 5 }]);
});

test('# and ; comment lines and blank lines are ignored', (t) => {
  const s = parseSyntax('# head\n[Service]\n; semi\n  # indented\nA=1\n\n');
  t.deepEqual(sectionEntries(s, 'Service'), [{ key: 'A', value: '1', line: 5 }]);
});

test('a # later in a value is part of the value', (t) => {
  const s = parseSyntax('[Service]\nA=x # not a comment\n');
  t.is(sectionEntries(s, 'Service')[0]?.value, 'x # not a comment');
});

test('keys and values are trimmed; the value keeps inner "="', (t) => {
  const s = parseSyntax('[Service]\n  Environment =  A=1 B=2  \r\n');
  t.deepEqual(sectionEntries(s, 'Service')[0], { key: 'Environment', value: 'A=1 B=2', line: 2 });
});

test('a trailing backslash continues the line, with the key line as the line', (t) => {
  const s = parseSyntax('[Service]\nExecStart=/bin/echo a \\\n  b \\\n  c\nX=1\n');
  const entries = sectionEntries(s, 'Service');
  t.is(entries[0]?.value.replace(/\s+/g, ' '), '/bin/echo a b c');
  t.is(entries[0]?.line, 2);
  t.deepEqual(entries[1], { key: 'X', value: '1', line: 5 });
});

test('comment lines inside a continuation are skipped', (t) => {
  const s = parseSyntax('[Service]\nA=one \\\n# comment\n two\n');
  t.is(sectionEntries(s, 'Service')[0]?.value.replace(/\s+/g, ' '), 'one two');
});

test('an escaped trailing backslash (\\\\) does not continue', (t) => {
  const s = parseSyntax('[Service]\nA=x\\\\\nB=y\n');
  t.deepEqual(
    sectionEntries(s, 'Service').map((e) => e.key),
    ['A', 'B'],
  );
});

test('a continuation at the end of the file ends the value', (t) => {
  const s = parseSyntax('[Service]\nA=x \\');
  t.is(sectionEntries(s, 'Service')[0]?.value, 'x');
});

test('repeated keys and repeated sections are all kept', (t) => {
  const s = parseSyntax('[X-Fleet]\nConflicts=a\nConflicts=b\n[Service]\n[X-Fleet]\nConflicts=c\n');
  t.deepEqual(
    sectionEntries(s, 'X-Fleet').map((e) => e.value),
    ['a', 'b', 'c'],
  );
});

test('an empty file has no sections and no error', (t) => {
  t.deepEqual(parseSyntax('').sections, []);
  t.deepEqual(parseSyntax('# only a comment\n').sections, []);
});

const errors: readonly (readonly [string, string, number, RegExp])[] = [
  ['text before the first section', 'just text\n[Service]\n', 1, /before the first \[Section\]/],
  ['a key before the first section', 'A=1\n[Service]\n', 1, /A= is before the first/],
  ['a header without "]"', '[Service\nA=1\n', 1, /missing its closing "\]"/],
  ['an empty header', '[]\n', 1, /needs a name/],
  ['a line without "="', '[Service]\n\nExecStart /bin/true\n', 3, /missing "="/],
  ['a line with no key', '[Service]\n=value\n', 2, /no key before "="/],
];

for (const [what, text, line, message] of errors) {
  test(`${what} is a syntax error on line ${line}`, (t) => {
    const err = t.throws(() => parseSyntax(text), { instanceOf: UnitError });
    t.is(err?.code, 'syntax');
    t.is(err?.line, line);
    t.regex(err?.message ?? '', message);
  });
}

test('collecting reports every bad line, not only the first', (t) => {
  const { errors: found } = parseSyntaxCollecting('[Service]\nbad one\nA=1\nbad two\n');
  t.deepEqual(
    found.map((e) => e.line),
    [2, 4],
  );
});

test('entries under a broken header are not reported again', (t) => {
  const { errors: found } = parseSyntaxCollecting('[Service\nExecStart=/bin/true\n');
  t.is(found.length, 1);
});

test('a file with thousands of bad lines reports the first MAX_PROBLEMS, quickly', (t) => {
  const started = Date.now();
  const errors = validateUnitFile('u.service', `[Service]\n${'junk\n'.repeat(50_000)}`);
  t.is(errors.length, MAX_PROBLEMS);
  t.is(errors[0]?.line, 2);
  t.true(Date.now() - started < 5000);
});

test('a huge garbage line is clipped in the message', (t) => {
  const err = t.throws(() => parseSyntax(`[S]\n${'x'.repeat(100_000)}\n`), {
    instanceOf: UnitError,
  });
  t.true((err?.message.length ?? 0) < 200);
});

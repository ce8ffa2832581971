import test from 'ava';

import { parseEnvironmentAssignments, parseEnvironmentFile } from '../../unit/environment.js';
import { UnitError } from '../../unit/errors.js';
import { expandExecArgv, parseExecLine } from '../../unit/exec.js';
import type { ExecCommand } from '../../unit/model.js';
import { parseUnit } from '../../unit/parse.js';

function one(value: string): ExecCommand {
  const cmds = parseExecLine('ExecStart', value, 3);
  if (cmds.length !== 1 || cmds[0] === undefined)
    throw new Error(`expected one command, got ${cmds.length}`);
  return cmds[0];
}

const argvs: readonly (readonly [string, readonly string[]])[] = [
  ['/bin/echo a b', ['/bin/echo', 'a', 'b']],
  ['/bin/echo   spaced\tout', ['/bin/echo', 'spaced', 'out']],
  [`/bin/sh -c 'echo "hi there"; exit 1'`, ['/bin/sh', '-c', 'echo "hi there"; exit 1']],
  ['/bin/echo "a b" \'c d\'', ['/bin/echo', 'a b', 'c d']],
  ['/bin/echo a"b c"d', ['/bin/echo', 'ab cd']],
  ['/bin/echo "say \\"hi\\""', ['/bin/echo', 'say "hi"']],
  ['/bin/echo a\\ b', ['/bin/echo', 'a b']],
  ['/bin/echo \\x41\\101\\u00e9 \\t', ['/bin/echo', 'AAé', '\t']],
  ['/bin/echo "" x', ['/bin/echo', '', 'x']],
  ['/bin/echo \\;', ['/bin/echo', ';']],
  ['/bin/echo ";"', ['/bin/echo', ';']],
  ['/bin/echo $HOME ${A}x $$', ['/bin/echo', '$HOME', '${A}x', '$$']],
  ['sleep 5', ['sleep', '5']],
];

for (const [line, argv] of argvs) {
  test(`exec line ${JSON.stringify(line)} splits into ${JSON.stringify(argv)}`, (t) => {
    t.deepEqual(one(line).argv, argv);
  });
}

test('prefixes - @ + combine in any order', (t) => {
  const c = one('+-@/bin/busybox sh -c true');
  t.true(c.ignoreFailure);
  t.true(c.privileged);
  t.is(c.path, '/bin/busybox');
  t.deepEqual(c.argv, ['sh', '-c', 'true']);
  const d = one('-/bin/false');
  t.true(d.ignoreFailure);
  t.false(d.privileged);
  t.deepEqual(d.argv, ['/bin/false']);
  t.is(d.line, 3);
});

test('a lone ; separates commands on one line', (t) => {
  const cmds = parseExecLine('ExecStartPre', '/bin/a 1 ; -/bin/b 2', 1);
  t.deepEqual(
    cmds.map((c) => [c.path, c.argv, c.ignoreFailure]),
    [
      ['/bin/a', ['/bin/a', '1'], false],
      ['/bin/b', ['/bin/b', '2'], true],
    ],
  );
});

const badLines: readonly (readonly [string, RegExp])[] = [
  ['/bin/echo "unclosed', /unclosed double quote/],
  ["/bin/echo 'unclosed", /unclosed single quote/],
  ['/bin/echo \\q', /unknown escape "\\q"/],
  ['/bin/echo trailing\\', /lone backslash/],
  ['bin/app', /absolute path or a bare name/],
  ['./app', /absolute path or a bare name/],
  ['-', /prefixes but no program/],
  ['@/bin/sh', /"@" needs a word/],
  ['$CMD arg', /may not contain a variable/],
  [':/bin/true', /":" prefix is not supported/],
  ['!/bin/true', /"!" prefix is not supported/],
  ['', /no command/],
];

for (const [line, message] of badLines) {
  test(`exec line ${JSON.stringify(line)} is refused with a message`, (t) => {
    const err = t.throws(() => parseExecLine('ExecStart', line, 4), { instanceOf: UnitError });
    t.is(err?.code, 'invalid-value');
    t.is(err?.line, 4);
    t.regex(err?.message ?? '', message);
  });
}

const env = new Map([
  ['HOME', '/root'],
  ['ARGS', '  -v   --fast '],
  ['EMPTY', ''],
  ['PORT', '8080'],
]);

const expansions: readonly (readonly [string, readonly string[]])[] = [
  ['/bin/echo $ARGS', ['/bin/echo', '-v', '--fast']],
  ['/bin/echo "$ARGS"', ['/bin/echo', '-v', '--fast']],
  ['/bin/echo ${ARGS}', ['/bin/echo', '  -v   --fast ']],
  ['/bin/echo --port=${PORT}', ['/bin/echo', '--port=8080']],
  ['/bin/echo $UNSET x', ['/bin/echo', 'x']],
  ['/bin/echo $EMPTY x', ['/bin/echo', 'x']],
  ['/bin/echo ${UNSET}x', ['/bin/echo', 'x']],
  ['/bin/echo $$HOME', ['/bin/echo', '$HOME']],
  ['/bin/echo a$HOME', ['/bin/echo', 'a$HOME']],
  [
    '/bin/echo ${UNSET:-dflt} ${PORT:-dflt} ${PORT:+alt} ${UNSET:+alt}',
    ['/bin/echo', 'dflt', '8080', 'alt', ''],
  ],
  ['/bin/echo ${not valid} ${', ['/bin/echo', '${not', 'valid}', '${']],
  ['/bin/echo cost:$$5', ['/bin/echo', 'cost:$5']],
];

for (const [line, argv] of expansions) {
  test(`expanding ${JSON.stringify(line)} gives ${JSON.stringify(argv)}`, (t) => {
    t.deepEqual(expandExecArgv(one(line), env), argv);
  });
}

test('specifiers expand in exec lines before the agent expands variables', (t) => {
  const text = '[Service]\nExecStart=/bin/echo %n %i 100%% ${HOME}\n';
  const c = parseUnit('w@5.service', text).service.execStart[0];
  t.deepEqual(c?.argv, ['/bin/echo', 'w@5.service', '5', '100%', '${HOME}']);
});

test('Environment= assignments: quotes, escapes, several per line', (t) => {
  t.deepEqual(parseEnvironmentAssignments('"A=1 2" B=2 C= D=x=y'), [
    ['A', '1 2'],
    ['B', '2'],
    ['C', ''],
    ['D', 'x=y'],
  ]);
  t.deepEqual(parseEnvironmentAssignments("E='single q' F=a\\tb G=\\d"), [
    ['E', 'single q'],
    ['F', 'a\tb'],
    ['G', '\\d'],
  ]);
});

test('EnvironmentFile contents: comments, export, quotes, continuations', (t) => {
  const text = [
    '# comment',
    '; another',
    '',
    'A=1',
    '  B = spaced value  ',
    'export C=exported',
    'D="double \\"quoted\\" $x"',
    "E='single \\n kept'",
    'F=line\\',
    'continued',
    'G="multi',
    'line"',
    'no equals here',
    '1BAD=x',
    'H=last',
  ].join('\n');
  t.deepEqual(parseEnvironmentFile(text), [
    ['A', '1'],
    ['B', 'spaced value'],
    ['C', 'exported'],
    ['D', 'double "quoted" $x'],
    ['E', 'single \\n kept'],
    ['F', 'linecontinued'],
    ['G', 'multi\nline'],
    ['H', 'last'],
  ]);
});

test('EnvironmentFile parsing handles CRLF and never throws on junk', (t) => {
  t.deepEqual(parseEnvironmentFile('A=1\r\nB=2\r\n'), [
    ['A', '1'],
    ['B', '2'],
  ]);
  t.notThrows(() => parseEnvironmentFile("\"'\\\n=\n==\n'unterminated"));
});

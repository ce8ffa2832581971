import { readdirSync, readFileSync } from 'node:fs';

import test from 'ava';

import { parseUnit, validateUnitFile } from '../../unit/parse.js';
import { parseImageReference } from '../../unit/image-ref.js';

import { EXAMPLES } from '../../testkit/examples.js';

const DIR = `${EXAMPLES}containers/`;
const good = readdirSync(DIR).filter((f) => f.endsWith('.service'));
const bad = readdirSync(`${DIR}bad/`).filter((f) => f.endsWith('.service'));

test('the container examples are where the tests expect them', (t) => {
  t.true(good.length >= 2);
  t.true(bad.length >= 4);
});

for (const file of good) {
  test(`container example ${file} verifies`, (t) => {
    const problems = validateUnitFile(file, readFileSync(DIR + file, 'utf8'));
    t.deepEqual(
      problems.map((e) => `${e.line}: ${e.message}`),
      [],
    );
  });
}

/** Each bad example's first problem: its line and what it says. */
const expected: Readonly<Record<string, readonly [number, RegExp]>> = {
  'bad-health.service': [4, /HealthRetries=-1: expected a whole number/],
  'bad-image-ref.service': [2, /Image=UPPER\/Case:bad tag: .*spaces/],
  'bad-pull.service': [3, /Pull=sometimes: use missing, always, never, newer/],
  'no-image.service': [1, /\[Container\] has no Image=/],
};

for (const file of bad) {
  test(`bad container example ${file} is refused with its line`, (t) => {
    const problems = validateUnitFile(file, readFileSync(`${DIR}bad/${file}`, 'utf8'));
    const want = expected[file];
    if (want === undefined) return t.fail(`no expectation for ${file}`);
    t.is(problems.length, 1, problems.map((p) => p.message).join('; '));
    t.is(problems[0]?.line, want[0]);
    t.regex(problems[0]?.message ?? '', want[1]);
  });
}

test("the quickstart's image unit verifies", (t) => {
  const file = `${EXAMPLES}images/hello-image.service`;
  t.deepEqual(validateUnitFile('hello-image.service', readFileSync(file, 'utf8')), []);
});

test('an image unit needs no ExecStart=; the overrides are read with specifiers', (t) => {
  const text = [
    '[Container]',
    'Image=127.0.0.1:5000/app:1',
    'Exec=-c "echo %i; sleep 1"',
    'Entrypoint=["/bin/sh"]',
    'Environment=A=1 "B=two words"',
    'WorkingDir=/srv/%i',
    'User=1000:1000',
    'Volume=/var/tmp:/data:ro',
    'Volume=cache-%i:/cache',
    'Pull=always',
  ].join('\n');
  const unit = parseUnit('app@7.service', text);
  t.deepEqual(unit.service.execStart, []);
  const c = unit.container;
  if (c === undefined) return t.fail('no container');
  t.is(c.image, '127.0.0.1:5000/app:1');
  t.deepEqual(c.exec, ['-c', 'echo 7; sleep 1']);
  t.deepEqual(c.entrypoint, ['/bin/sh']);
  t.deepEqual(c.environment, [
    ['A', '1'],
    ['B', 'two words'],
  ]);
  t.is(c.workingDir, '/srv/7');
  t.is(c.user, '1000:1000');
  t.deepEqual(c.volumes, [
    { source: '/var/tmp', named: false, destination: '/data', readOnly: true },
    { source: 'cache-7', named: true, destination: '/cache', readOnly: false },
  ]);
  t.is(c.pull, 'always');
});

test('a unit without [Container] still needs ExecStart=', (t) => {
  const problems = validateUnitFile('x.service', '[Service]\nRestart=always\n');
  t.regex(problems[0]?.message ?? '', /no ExecStart=/);
});

test('bad [Container] values are refused with their lines', (t) => {
  const text = [
    '[Container]', // 1
    'Image=busybox', // 2
    'Volume=relative:/x:rx', // 3
    'Volume=/a/../b:/x', // 4
    'WorkingDir=srv', // 5
    'PublishPort=80:80', // 6
    'Imagee=x', // 7
    'Entrypoint=[1]', // 8
    '[Service]', // 9
    'RootDirectory=/srv/root', // 10
  ].join('\n');
  const problems = validateUnitFile('x.service', text).map((p) => [p.line, p.message]);
  t.deepEqual(
    problems.map(([line]) => line),
    [3, 4, 5, 6, 7, 8, 10],
  );
  t.regex(String(problems[3]?.[1]), /PublishPort= is a Quadlet key Flotilla does not support/);
  t.regex(String(problems[4]?.[1]), /did you mean "Image"/);
  t.regex(String(problems[6]?.[1]), /RootDirectory= cannot be used with \[Container\]/);
});

test('image references follow Docker: a host, lowercase paths, a tag, a sha256 digest', (t) => {
  t.deepEqual(parseImageReference('busybox'), {
    registry: 'docker.io',
    repository: 'library/busybox',
    tag: 'latest',
    digest: '',
  });
  const digest = `sha256:${'ab'.repeat(32)}`;
  t.deepEqual(parseImageReference(`127.0.0.1:5000/a/b:1.4@${digest}`), {
    registry: '127.0.0.1:5000',
    repository: 'a/b',
    tag: '1.4',
    digest,
  });
  for (const bad of ['', 'upper/CASE', 'a:b c', 'a@sha256:12', 'a:-x', 'a//b', 'x'.repeat(600)]) {
    t.is(typeof parseImageReference(bad), 'string', bad);
  }
});

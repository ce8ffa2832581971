import { readdirSync, readFileSync } from 'node:fs';

import test from 'ava';
import fc from 'fast-check';

import { UnitError } from '../../unit/errors.js';
import { FLEET_KEYS, FLEET_ALIASES, FLEET_LIMITS } from '../../unit/fleet.js';
import { parseUnit, validateUnitFile } from '../../unit/parse.js';

import { EXAMPLES } from '../../testkit/examples.js';
const texts = [
  ...readdirSync(EXAMPLES)
    .filter((f) => f.endsWith('.service'))
    .map((f) => readFileSync(EXAMPLES + f, 'utf8')),
  ...readdirSync(`${EXAMPLES}bad/`).map((f) => readFileSync(`${EXAMPLES}bad/${f}`, 'utf8')),
];

/** Per call: generous, but a hang or a quadratic blow-up on a small input would exceed it. */
const CALL_BOUND_MS = 2000;

function elapsedMs(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e6;
}

/**
 * The property: parsing returns a unit or throws a UnitError (never anything else), quickly,
 * and validateUnitFile agrees with parseUnit about whether the file is valid.
 */
function parsesOrRejects(name: string, text: string): boolean {
  const started = process.hrtime.bigint();
  let threw: unknown = null;
  try {
    parseUnit(name, text);
  } catch (err) {
    threw = err;
  }
  if (threw !== null && !(threw instanceof UnitError)) throw threw;
  const errors = validateUnitFile(name, text);
  if (!errors.every((e) => e instanceof UnitError && typeof e.message === 'string')) return false;
  if ((threw === null) !== (errors.length === 0)) return false;
  if (threw instanceof UnitError && threw.message !== errors[0]?.message) return false;
  return elapsedMs(started) < CALL_BOUND_MS;
}

const decoder = new TextDecoder();

test('random bytes: a unit or a UnitError, never anything else', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) =>
      parsesOrRejects('x.service', decoder.decode(bytes)),
    ),
    { numRuns: 400 },
  );
  t.pass();
});

test('random strings and random names: a unit or a UnitError', (t) => {
  fc.assert(
    fc.property(
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.string({ maxLength: 300 }),
      (name, text) => parsesOrRejects(name, text),
    ),
    { numRuns: 400 },
  );
  t.pass();
});

const KEYS = [
  ...FLEET_KEYS,
  ...FLEET_ALIASES.keys(),
  'ExecStart',
  'ExecStartPre',
  'ExecStop',
  'Type',
  'Restart',
  'RestartSec',
  'TimeoutStopSec',
  'KillSignal',
  'Environment',
  'EnvironmentFile',
  'WorkingDirectory',
  'User',
  'RootDirectory',
  'PrivateNetwork',
  'MemoryMax',
  'MemoryLimit',
  'CPUQuota',
  'TasksMax',
  'Description',
];
const valueChars = fc.constantFrom(...'aZ09 =%in@*?[]^!-\\"\';$.{}:/,sMGK\t'.split(''));
const value = fc.oneof(
  fc.string({ unit: valueChars, maxLength: 40 }),
  fc.constantFrom(
    '',
    'yes',
    '5s',
    '64M',
    '25%',
    '/bin/true',
    'web@%i.service',
    'a=b',
    'infinity',
    '"a=b" "c=d"',
  ),
);
const section = fc.tuple(
  fc.constantFrom('Unit', 'Service', 'X-Fleet', 'Install'),
  fc.array(fc.tuple(fc.constantFrom(...KEYS), value), { maxLength: 12 }),
);

test('random unit-shaped files with real keys: a unit or a UnitError', (t) => {
  fc.assert(
    fc.property(
      fc.array(section, { maxLength: 5 }),
      fc.constantFrom('a.service', 'web@.service', 'web@3.service', 'bad name'),
      (sections, name) => {
        const text = sections
          .map(([s, entries]) => `[${s}]\n${entries.map(([k, v]) => `${k}=${v}`).join('\n')}`)
          .join('\n');
        return parsesOrRejects(name, text);
      },
    ),
    { numRuns: 600 },
  );
  t.pass();
});

/** One edit of a text: insert, delete, duplicate or splice in a special character. */
const mutation = fc.tuple(
  fc.constantFrom('insert', 'delete', 'duplicate', 'special'),
  fc.nat(),
  fc.nat({ max: 40 }),
  fc.string({ maxLength: 20 }),
  fc.constantFrom(
    '\\',
    '\n',
    '[',
    ']',
    '=',
    '"',
    "'",
    '%',
    '$',
    ';',
    '#',
    '\\\n',
    '\r',
    '\0',
    '@',
    '*',
  ),
);

test('mutated examples: a unit or a UnitError', (t) => {
  fc.assert(
    fc.property(
      fc.constantFrom(...texts),
      fc.array(mutation, { minLength: 1, maxLength: 8 }),
      (base, edits) => {
        let text = base;
        for (const [kind, at, len, insert, special] of edits) {
          const i = text.length === 0 ? 0 : at % text.length;
          if (kind === 'insert') text = text.slice(0, i) + insert + text.slice(i);
          else if (kind === 'delete') text = text.slice(0, i) + text.slice(i + len);
          else if (kind === 'duplicate')
            text = text.slice(0, i + len) + text.slice(i, i + len) + text.slice(i + len);
          else text = text.slice(0, i) + special + text.slice(i);
        }
        return parsesOrRejects('web@7.service', text);
      },
    ),
    { numRuns: 800 },
  );
  t.pass();
});

/** Best of five, to keep a loaded machine's hiccups out of the ratio. */
function bestTimeMs(fn: () => void): number {
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const started = process.hrtime.bigint();
    fn();
    best = Math.min(best, elapsedMs(started));
  }
  return best;
}

const block = [
  '# a comment line',
  '[Unit]',
  'Description=Block %n on %i',
  '[Service]',
  'Environment="A=1 2" B=3',
  'ExecStartPre=/bin/sh -c \'echo "hi" $A ${B}\' \\',
  '  --continued \\x41',
  'MemoryMax=64M',
  'CPUQuota=25%',
  '[X-Fleet]',
  'MachineMetadata="region=eu" zone=a',
  'Conflicts=web@*.service',
  '',
].join('\n');

/** Inputs of about `size` characters that exercise different parser paths. */
const shapes: Readonly<Record<string, (size: number) => string>> = {
  'a realistic unit repeated': (size) =>
    `[Service]\nExecStart=/bin/true\n${block.repeat(Math.ceil(size / block.length))}`,
  'many valid entries': (size) =>
    `[Service]\nExecStart=/bin/true\n${'# c\nEnvironment=A=1 "B=2 3"\n'.repeat(Math.ceil(size / 30))}`,
  'one long line': (size) => `[Service]\nExecStart=/bin/echo ${'a'.repeat(size)}`,
  'one long continued value': (size) =>
    `[Service]\nEnvironment=${'A=1 \\\n'.repeat(Math.ceil(size / 6))}`,
  'a long quoted exec word': (size) =>
    `[Service]\nExecStart=/bin/echo "${'\\x41'.repeat(Math.ceil(size / 4))}"`,
  'brackets and quotes': (size) => '["\'\\'.repeat(Math.ceil(size / 4)),
  'many keyless lines': (size) => `[Service]\n${'junk\n'.repeat(Math.ceil(size / 5))}`,
  'many unknown X-Fleet keys': (size) =>
    `[X-Fleet]\n${'Conflictz=a\n'.repeat(Math.ceil(size / 12))}`,
  'a long MachineOf line': (size) =>
    `[X-Fleet]\nMachineOf=${'a.service '.repeat(Math.ceil(size / 10))}`,
};

for (const [shape, make] of Object.entries(shapes)) {
  test(`linear time: ${shape}, 1 MB within 5 s and at most ~30x the time of 100 KB`, (t) => {
    const small = make(100_000);
    const large = make(1_000_000);
    // parseUnit, not validateUnitFile: the latter refuses a file over UNIT_FILE_MAX_BYTES
    // unread, and this is about the parser, which runs on stored files of any size.
    const check = (text: string) => () => {
      try {
        parseUnit('web@3.service', text);
      } catch (err) {
        if (!(err instanceof UnitError)) throw err;
      }
    };
    const smallMs = bestTimeMs(check(small));
    const largeMs = bestTimeMs(check(large));
    t.log(`${shape}: 100 KB ${smallMs.toFixed(1)} ms, 1 MB ${largeMs.toFixed(1)} ms`);
    t.true(largeMs < 5000, `1 MB took ${largeMs} ms`);
    // The 200 ms allowance keeps GC and a busy machine from failing the ratio on small
    // timings; a quadratic parser (100x) still fails it.
    t.true(largeMs <= 30 * smallMs + 200, `1 MB ${largeMs} ms vs 100 KB ${smallMs} ms`);
  });
}

test('the largest allowed MachineOf x Conflicts cross-check stays fast', (t) => {
  const peers = Array.from(
    { length: FLEET_LIMITS.machineOf },
    (_, i) => `p${i}@${'x'.repeat(200)}.service`,
  );
  const globs = Array.from(
    { length: FLEET_LIMITS.globs },
    (_, i) => `*a*b*c*${i}*${'?'.repeat(100)}`,
  );
  const text = `[Service]\nExecStart=/bin/true\n[X-Fleet]\nMachineOf=${peers.join(' ')}\nConflicts=${globs.join(' ')}\n`;
  const ms = bestTimeMs(() => {
    validateUnitFile('u.service', text);
  });
  t.true(ms < 5000, `took ${ms} ms`);
});

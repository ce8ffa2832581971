/**
 * Large and hostile unit files: a bad line of 100 KB or 1 MB is reported at once, with a
 * message that quotes a short, escaped excerpt of it; files over UNIT_FILE_MAX_BYTES are
 * refused unread by the admission check, while the parser still reads stored files of any size.
 */
import test from 'ava';

import { UnitError } from '../../unit/errors.js';
import { EXCERPT_CHARS } from '../../unit/excerpt.js';
import { UNIT_FILE_MAX_BYTES } from '../../unit/limits.js';
import { parseUnit, validateUnitFile } from '../../unit/parse.js';

/** Generous: a linear parser takes milliseconds; the hang this guards against took minutes. */
const FAST_MS = 2000;

/** A message quoting one excerpt: its own words, the excerpt, and the size note. */
const MESSAGE_MAX = 400;

const head = '[Service]\nExecStart=/bin/true\n';

/** Files whose one bad line holds `big`, with what the message must say about it. */
const BAD_LINES: Readonly<Record<string, { file: (big: string) => string; says: RegExp }>> = {
  'a line without "="': { file: (big) => `${head}${big}\n`, says: /missing "="/ },
  'a header without "]"': { file: (big) => `[${big}\n`, says: /closing "\]"/ },
  'a key before any section': { file: (big) => `${big}=1\n`, says: /before the first/ },
  'an Environment= word that is no assignment': {
    file: (big) => `${head}Environment=${big}\n`,
    says: /is not an assignment/,
  },
  'a relative program path': {
    file: (big) => `[Service]\nExecStart=./${big}\n`,
    says: /absolute path/,
  },
  'a memory size': { file: (big) => `${head}MemoryMax=1${big}\n`, says: /MemoryMax=1/ },
  'a time span': { file: (big) => `${head}RestartSec=1${big}\n`, says: /time span/ },
  'an unknown [X-Fleet] key': {
    file: (big) => `${head}[X-Fleet]\n${big}=1\n`,
    says: /unknown \[X-Fleet\] key/,
  },
  'a glob over its length limit': {
    file: (big) => `${head}[X-Fleet]\nConflicts=${big}\n`,
    says: /a glob may be at most/,
  },
};

function elapsedMs(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e6;
}

/** The first problem parseUnit reports (it parses files of any size) and how long it took. */
function firstProblem(text: string): { err: UnitError; ms: number } {
  const started = process.hrtime.bigint();
  try {
    parseUnit('big.service', text);
  } catch (err) {
    if (err instanceof UnitError) return { err, ms: elapsedMs(started) };
    throw err;
  }
  throw new Error('the file parsed, but it should not have');
}

for (const [what, { file, says }] of Object.entries(BAD_LINES)) {
  for (const size of [100_000, 1_000_000]) {
    test(`${what} of ${size === 1_000_000 ? '1 MB' : '100 KB'} is reported at once, quoting a short excerpt`, (t) => {
      const { err, ms } = firstProblem(file('a'.repeat(size)));
      t.true(ms < FAST_MS, `took ${ms} ms`);
      t.regex(err.message, says);
      t.true(err.message.length < MESSAGE_MAX, `${err.message.length} characters`);
      t.regex(err.message, /a{16}…\(\d+ bytes\)/, 'the excerpt says how large the value is');
    });
  }
}

test('a bad line of 100 KB gets the same short message from validateUnitFile', (t) => {
  const started = process.hrtime.bigint();
  const errors = validateUnitFile('big.service', `${head}Environment=${'a'.repeat(100_000)}\n`);
  t.true(elapsedMs(started) < FAST_MS);
  t.is(errors.length, 1);
  t.regex(errors[0]?.message ?? '', /^Environment=: "a{64}…\(100000 bytes\)" is not an assignment/);
});

test('control characters and bytes that are not UTF-8 are escaped in messages', (t) => {
  const bytes = Buffer.concat([
    Buffer.from(`${head}Environment=`),
    Buffer.from([0x1b, 0x5b, 0x33, 0x31, 0x6d, 0x00, 0xff, 0xfe, 0x07]),
    Buffer.from('\u202e'.repeat(3)),
    Buffer.from('x'.repeat(200_000)),
    Buffer.from('\n'),
  ]);
  const { err } = firstProblem(bytes.toString('utf8'));
  t.true(
    err.message.startsWith('Environment=: "\\x1b[31m\\x00\\ufffd\\ufffd\\x07\\u202e\\u202e\\u202e'),
    err.message,
  );
  t.false(/[\p{Cc}\p{Cf}\uFFFD]/u.test(err.message), 'nothing invisible is left raw');
  t.true(err.message.length < EXCERPT_CHARS + 100);
});

test('a file over UNIT_FILE_MAX_BYTES is refused unread, naming the limit', (t) => {
  const over = [
    `${head}Description=${'d'.repeat(UNIT_FILE_MAX_BYTES)}\n`,
    // Fewer characters than the limit, more bytes: é is two bytes in UTF-8, and bytes count.
    `${head}Description=${'é'.repeat(UNIT_FILE_MAX_BYTES / 2)}\n`,
  ];
  for (const text of over) {
    const started = process.hrtime.bigint();
    const errors = validateUnitFile('big.service', text);
    t.true(elapsedMs(started) < FAST_MS);
    t.is(errors.length, 1);
    t.is(errors[0]?.code, 'too-large');
    t.is(errors[0]?.file, 'big.service');
    t.is(errors[0]?.line, 0);
    t.is(
      errors[0]?.message,
      `the file is 256 KiB (${Buffer.byteLength(text)} bytes); a unit file may be at most 256 KiB`,
    );
  }
  const pad = UNIT_FILE_MAX_BYTES - Buffer.byteLength(`${head}#\n`);
  const atLimit = `${head}#${'x'.repeat(pad)}\n`;
  t.is(Buffer.byteLength(atLimit), UNIT_FILE_MAX_BYTES);
  t.deepEqual(validateUnitFile('big.service', atLimit), [], 'a file of exactly the limit is fine');
});

test('an invalid name is still reported beside a file that is too large', (t) => {
  const errors = validateUnitFile(
    'bad name!.service',
    `${head}#${'x'.repeat(UNIT_FILE_MAX_BYTES)}`,
  );
  t.deepEqual(
    errors.map((e) => e.code),
    ['invalid-name', 'too-large'],
  );
});

test('the parser itself has no size limit, so units stored before the limit still run', (t) => {
  const text = `[Unit]\nDescription=${'d'.repeat(2 * UNIT_FILE_MAX_BYTES)}\n${head}`;
  const unit = parseUnit('big.service', text);
  t.is(unit.description.length, 2 * UNIT_FILE_MAX_BYTES);
});

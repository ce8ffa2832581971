import test from 'ava';

import { EXCERPT_CHARS, excerpt, formatBytes } from '../../unit/excerpt.js';

test('a short printable value is shown as written, backslashes and quotes included', (t) => {
  t.is(excerpt('web@*.service'), 'web@*.service');
  t.is(excerpt('a "quoted" \\; value'), 'a "quoted" \\; value');
  t.is(excerpt('héllo wörld ✓'), 'héllo wörld ✓');
});

test('a long value shows its first EXCERPT_CHARS characters and its whole size in bytes', (t) => {
  const shown = excerpt('x'.repeat(1_000_000));
  t.is(shown, `${'x'.repeat(EXCERPT_CHARS)}…(1000000 bytes)`);
  t.is(excerpt('é'.repeat(100), 10), `${'é'.repeat(10)}…(200 bytes)`, 'bytes are UTF-8 bytes');
  t.is(excerpt('x'.repeat(EXCERPT_CHARS)), 'x'.repeat(EXCERPT_CHARS), 'exactly max is not cut');
});

test('control characters, DEL and C1 controls are escaped, so none reaches a terminal raw', (t) => {
  t.is(excerpt('a\tb\nc\rd'), 'a\\tb\\nc\\rd');
  t.is(excerpt('\x1b[2J\x00\x07\x7f'), '\\x1b[2J\\x00\\x07\\x7f');
  t.is(excerpt('\u0085\u009b'), '\\x85\\x9b');
});

test('invisible formatting, separators, lone surrogates and U+FFFD are escaped', (t) => {
  t.is(excerpt('abc\u202edef'), 'abc\\u202edef', 'a bidi override cannot reorder the message');
  t.is(excerpt('zero\u200bwidth\ufeff'), 'zero\\u200bwidth\\ufeff');
  t.is(excerpt('line\u2028para\u2029'), 'line\\u2028para\\u2029');
  t.is(excerpt('\ud800x\udc00'), '\\ud800x\\udc00');
  // readFile(..., 'utf8') turns bytes that are not UTF-8 into U+FFFD: show that they were there.
  t.is(excerpt(Buffer.from([0x61, 0xff, 0xfe, 0x62]).toString('utf8')), 'a\\ufffd\\ufffdb');
  t.is(excerpt('\u{e0001}tag'), '\\u{e0001}tag');
});

test('a cut never splits a surrogate pair or an escape', (t) => {
  const emoji = '😀'.repeat(10);
  const shown = excerpt(emoji, 5);
  t.is(shown, `${'😀'.repeat(2)}…(40 bytes)`, 'a pair is two UTF-16 units, both or neither');
  t.is(excerpt('ab\x1bcd', 4), 'ab…(5 bytes)', '\\x1b does not fit in the two left');
});

test('escaped text counts against the bound: a value of control bytes stays short', (t) => {
  const shown = excerpt('\x01'.repeat(100_000));
  t.true(shown.length <= EXCERPT_CHARS + '…(100000 bytes)'.length, shown);
  t.true(shown.startsWith('\\x01\\x01'));
});

test('a 50 MB value is excerpted in milliseconds: only its start is escaped', (t) => {
  const huge = 'y'.repeat(50_000_000);
  const started = process.hrtime.bigint();
  for (let i = 0; i < 10; i++) excerpt(huge);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  t.true(ms < 2000, `10 excerpts of 50 MB took ${ms} ms`);
});

test('sizes read as bytes, KiB or MiB', (t) => {
  t.is(formatBytes(300), '300 bytes');
  t.is(formatBytes(256 * 1024), '256 KiB');
  t.is(formatBytes(1.5 * 1024 * 1024), '1.5 MiB');
  t.is(formatBytes(1_782_579), '1.7 MiB');
  t.is(formatBytes(1.25 * 1024 * 1024), '1.25 MiB');
  t.is(formatBytes(5_000_000), '4.77 MiB');
  t.is(formatBytes(300_000), '293 KiB');
});

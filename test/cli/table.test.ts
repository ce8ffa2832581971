/**
 * Listings printed page by page come out as they would whole: the same JSON document, and a
 * table whose columns only ever widen.
 */
import test from 'ava';
import fc from 'fast-check';
import { JsonArrayWriter, printJson, renderTable, TableWriter } from '../../cli/table.js';
import type { CliIo } from '../../cli/verb.js';

function capture(): { io: CliIo; text: () => string } {
  let out = '';
  const io = { stdout: (s: string) => (out += s), stderr: () => undefined } as unknown as CliIo;
  return { io, text: () => out };
}

test('a JSON array written in batches is the document printJson writes at once', (t) => {
  const value = fc.jsonValue().map((v) => (v === undefined ? null : v));
  fc.assert(
    fc.property(fc.array(fc.array(value, { maxLength: 5 }), { maxLength: 5 }), (batches) => {
      const whole = capture();
      printJson(whole.io, batches.flat());
      let streamed = '';
      const json = new JsonArrayWriter((s) => (streamed += s));
      for (const batch of batches) json.write(batch);
      json.end();
      return streamed === whole.text();
    }),
    { numRuns: 300 },
  );
  t.pass();
});

const columns = { name: (r: string) => r, len: (r: string) => String(r.length) };
const opts = { full: false, legend: true };

test('a table written in one batch is renderTable; a later, wider cell widens its column', (t) => {
  const rows = ['a', 'bb', 'ccc'];
  let out = '';
  const table = new TableWriter(['name', 'len'], columns, opts, (s) => (out += s));
  table.write(rows);
  t.is(out, renderTable(rows, ['name', 'len'], columns, opts));
  t.is(out, 'NAME  LEN\na     1\nbb    2\nccc   3\n');
  table.write(['a-much-longer-name', 'd']);
  table.end();
  t.is(
    out.split('\n').slice(4).join('\n'),
    'a-much-longer-name  18\nd                   1\n',
    'rows after the wide one are aligned to it',
  );
});

test('a table without rows still prints its header, once', (t) => {
  let out = '';
  const table = new TableWriter(['name', 'len'], columns, opts, (s) => (out += s));
  table.write([]);
  table.end();
  t.is(out, 'NAME  LEN\n');
  out = '';
  const quiet = new TableWriter(['name'], columns, { ...opts, legend: false }, (s) => (out += s));
  quiet.end();
  t.is(out, '');
});

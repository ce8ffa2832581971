/**
 * fleet's view of unit files, checked against fleet's own code: the fixture holds what fleet's
 * vendored go-systemd (fleet v1.0.0) made of each input (options, error, Serialize, SHA1),
 * produced by a Go program run once against fleet's source (CI cannot fetch it).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import {
  fleetHash,
  readOptions,
  serializeOptions,
  unstorableOptions,
  type UnitOption,
} from '../../scheduler/fleet-api/unit-options.js';
import { FleetFiles } from '../../scheduler/fleet-api/fleet-files.js';

interface GoCase {
  readonly input: string;
  readonly options: UnitOption[];
  readonly error?: string;
  readonly serialized: string;
  readonly hash: string;
}

const FIXTURE = fileURLToPath(
  new URL('../../../test/fleet-api/fixtures/go-systemd-options.json', import.meta.url),
);
const CASES = JSON.parse(readFileSync(FIXTURE, 'utf8')) as GoCase[];

test('unit files read into the options fleet reads, quirks and errors included', (t) => {
  t.true(CASES.length >= 20);
  for (const c of CASES) {
    const got = readOptions(c.input);
    t.deepEqual(got.options, c.options, JSON.stringify(c.input));
    t.is(got.error !== undefined, c.error !== undefined, `error of ${JSON.stringify(c.input)}`);
  }
});

test("options serialize and hash as fleet's Serialize and UnitFile.Hash do", (t) => {
  for (const c of CASES) {
    t.is(serializeOptions(c.options), c.serialized, JSON.stringify(c.input));
    t.is(fleetHash(c.options), c.hash);
  }
});

test('a file in canonical form hashes like sha1sum of the file', (t) => {
  const file = '[Unit]\nDescription=Hello\n\n[Service]\nExecStart=/bin/true\n';
  const sha1 = createHash('sha1').update(file).digest('hex');
  t.is(fleetHash(readOptions(file).options), sha1);
  t.regex(sha1, /^[0-9a-f]{40}$/);
});

test('options that would not read back the same from a unit file are refused', (t) => {
  const ok: UnitOption[] = [
    { section: 'Service', name: 'ExecStart', value: "/bin/sh -c \\\n  'echo hi'" },
  ];
  t.is(unstorableOptions(ok), undefined);
  const injected = [{ section: 'Unit', name: 'Description', value: 'x\n[X-Fleet]\nGlobal=true' }];
  t.regex(unstorableOptions(injected) ?? '', /does not read back/);
  t.regex(unstorableOptions([{ section: 'Unit', name: 'A=B', value: 'c' }]) ?? '', /read back/);
  t.regex(unstorableOptions([{ section: 'Unit', name: 'A', value: ' c' }]) ?? '', /read back/);
  t.regex(unstorableOptions([{ section: 'U]x', name: 'A', value: 'c' }]) ?? '', /./);
  const long = [{ section: 'Unit', name: 'Description', value: 'x'.repeat(2048) }];
  t.regex(unstorableOptions(long) ?? '', /line too long/);
});

test("fleet's view of a file is computed once per content and bounded by bytes", (t) => {
  const files = new FleetFiles({ maxBytes: 200 });
  const a = { file: '[Unit]\nDescription=a\n', hash: 'ha' };
  const first = files.of(a);
  t.is(files.of({ ...a }), first);
  for (let i = 0; i < 20; i++) files.of({ file: `[Unit]\nDescription=${i}\n`, hash: `h${i}` });
  t.true(files.size < 10);
  // A different text under the same content hash is read afresh, never answered from the old one.
  const other = files.of({ file: '[Unit]\nDescription=b\n', hash: 'ha' });
  t.deepEqual(other.options, [{ section: 'Unit', name: 'Description', value: 'b' }]);
});

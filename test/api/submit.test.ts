import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import test from 'ava';
import { codecs, MAX_TXN_OPS } from '../../store/index.js';
import {
  MAX_PROBLEMS,
  SUBMIT_MAX_BYTES,
  UNIT_FILE_MAX_BYTES,
  UNIT_NAME_MAX,
} from '../../unit/index.js';
import { etcdForFile, EXAMPLES, unitText } from '../../testkit/index.js';
import { boundDetails, MAX_STATUS_DETAILS } from '../../scheduler/gate/errors.js';
import { failure, fingerprint, startApi, unitNames } from './api-kit.js';

const example = (name: string): string => readFileSync(join(EXAMPLES, name), 'utf8');

const server = etcdForFile(test);

/** What a bad example's error must mention, besides its file name. */
const BAD: Readonly<Record<string, { line: number; mentions: string }>> = {
  'bad name!.service': { line: 0, mentions: 'not allowed' },
  'bad-memory.service': { line: 3, mentions: 'MemoryMax' },
  'global-with-machineof.service': { line: 5, mentions: 'Global' },
  'machineid-with-conflicts.service': { line: 3, mentions: 'MachineID' },
  'metadata-without-value.service': { line: 4, mentions: 'MachineMetadata' },
  'no-section.service': { line: 1, mentions: 'Section' },
  'self-peer.service': { line: 5, mentions: 'MachineOf' },
  'unknown-xfleet-key.service': { line: 4, mentions: 'Conflict' },
  'unterminated-section.service': { line: 1, mentions: '[Service' },
};

test('many units are submitted in one transaction and read back byte for byte', async (t) => {
  const api = await startApi(t, server());
  const files = ['hello.service', 'web@.service', 'db.service', 'api@.service'].map((name) => ({
    name,
    contents: example(name),
  }));
  const res = await api.submit({ files });
  t.deepEqual([...res.created].sort(), files.map((f) => f.name).sort());
  t.deepEqual(res.updated, []);
  t.deepEqual(res.unchanged, []);
  const { items } = await api.store.list(api.store.keys.dir('unit'));
  t.is(items.length, files.length);
  t.true(
    items.every((kv) => kv.modRevision === res.revision),
    'all written at one revision',
  );
  for (const f of files) {
    const rec = await api.store.getRecord(codecs.unit, api.store.keys.unit(f.name));
    t.is(rec?.value.file, f.contents);
    t.is(rec?.value.desiredState, 'inactive');
    t.regex(rec?.value.hash ?? '', /^[0-9a-f]{64}$/);
  }
});

test('resubmitting the identical file is a no-op that writes nothing', async (t) => {
  const api = await startApi(t, server());
  const files = [{ name: 'hello.service', contents: example('hello.service') }];
  await api.submit({ files });
  const before = await fingerprint(api.store);
  const again = await api.submit({ files });
  t.deepEqual(again.unchanged, ['hello.service']);
  t.deepEqual(again.created, []);
  t.deepEqual(await fingerprint(api.store), before);
  // Comments do not make a different unit (fleet compares content hashes).
  const commented = await api.submit({
    files: [{ name: 'hello.service', contents: `# a comment\n${example('hello.service')}` }],
  });
  t.deepEqual(commented.unchanged, ['hello.service']);
  t.deepEqual(await fingerprint(api.store), before);
});

test('a different unit under an existing name is ALREADY_EXISTS unless replace is set', async (t) => {
  const api = await startApi(t, server());
  await api.submit({ files: [{ name: 'a.service', contents: unitText({ exec: '/bin/true' }) }] });
  const before = await fingerprint(api.store);
  const changed = unitText({ exec: '/bin/false' });
  const err = await failure(
    api.submit({
      files: [
        { name: 'new.service', contents: unitText() },
        { name: 'a.service', contents: changed },
      ],
    }),
  );
  t.is(err.code, status.ALREADY_EXISTS);
  t.regex(err.details, /a\.service/);
  t.deepEqual(await fingerprint(api.store), before, 'new.service was not written either');

  const replaced = await api.submit({
    files: [{ name: 'a.service', contents: changed }],
    replace: true,
    desiredState: 'launched',
  });
  t.deepEqual(replaced.updated, ['a.service']);
  const rec = await api.store.getRecord(codecs.unit, api.store.keys.unit('a.service'));
  t.is(rec?.value.file, changed);
  t.is(rec?.value.desiredState, 'launched');
});

for (const file of readdirSync(join(EXAMPLES, 'bad'))) {
  test(`bad example ${file} is INVALID_ARGUMENT naming the problem, and nothing is written`, async (t) => {
    const api = await startApi(t, server(), { label: 'bad' });
    await api.submit({ files: [{ name: 'keep.service', contents: unitText() }] });
    const before = await fingerprint(api.store);
    const contents = readFileSync(join(EXAMPLES, 'bad', file), 'utf8');
    const err = await failure(api.submit({ files: [{ name: file, contents }] }));
    t.is(err.code, status.INVALID_ARGUMENT);
    const expected = BAD[file];
    t.truthy(expected, `no expectation for ${file}`);
    if (expected === undefined) return;
    const where = expected.line > 0 ? `${file}:${expected.line}: ` : `${file}: `;
    t.true(err.details.startsWith(where), `${JSON.stringify(err.details)} starts with ${where}`);
    t.true(err.details.includes(expected.mentions), err.details);
    t.deepEqual(await fingerprint(api.store), before);
  });
}

test('a batch with one bad file writes none of them and lists every problem', async (t) => {
  const api = await startApi(t, server());
  const err = await failure(
    api.submit({
      files: [
        { name: 'hello.service', contents: example('hello.service') },
        { name: 'bad-memory.service', contents: example('bad/bad-memory.service') },
        { name: 'web@.service', contents: example('web@.service') },
        { name: 'unknown.service', contents: example('bad/unknown-xfleet-key.service') },
      ],
    }),
  );
  t.is(err.code, status.INVALID_ARGUMENT);
  t.regex(err.details, /^bad-memory\.service:3: /m);
  t.regex(err.details, /^unknown\.service:4: /m);
  t.deepEqual(await unitNames(api.store), []);
});

test('templates and instances may be submitted; a template cannot be started', async (t) => {
  const api = await startApi(t, server());
  const res = await api.submit({
    files: [
      { name: 'web@.service', contents: example('web@.service') },
      { name: 'web@7.service', contents: example('web@.service') },
    ],
  });
  t.deepEqual([...res.created].sort(), ['web@.service', 'web@7.service']);
  const before = await fingerprint(api.store);
  const err = await failure(
    api.submit({
      files: [{ name: 'api@.service', contents: example('api@.service') }],
      desiredState: 'launched',
    }),
  );
  t.is(err.code, status.FAILED_PRECONDITION);
  t.deepEqual(await fingerprint(api.store), before);
});

test('concurrent submits of one name with different files: exactly one wins', async (t) => {
  const api = await startApi(t, server());
  const attempts = Array.from({ length: 6 }, (_, i) =>
    api
      .submit({ files: [{ name: 'race.service', contents: unitText({ exec: `/bin/echo ${i}` }) }] })
      .then(
        () => 'created' as const,
        (err: unknown) => err,
      ),
  );
  const outcomes = await Promise.all(attempts);
  t.is(outcomes.filter((o) => o === 'created').length, 1);
  for (const o of outcomes) {
    if (o !== 'created') t.is((o as { code?: number }).code, status.ALREADY_EXISTS);
  }
});

test('requests that could never be applied are refused before anything is read', async (t) => {
  const api = await startApi(t, server());
  t.is((await failure(api.submit({ files: [] }))).code, status.INVALID_ARGUMENT);
  const twice = { name: 'x.service', contents: unitText() };
  t.is((await failure(api.submit({ files: [twice, twice] }))).code, status.INVALID_ARGUMENT);
  const badState = api.submit({ files: [twice], desiredState: 'running' });
  t.is((await failure(badState)).code, status.INVALID_ARGUMENT);
  t.deepEqual(await unitNames(api.store), []);
});

/** A valid unit file of about `bytes` bytes, padded with a comment. */
function paddedUnit(bytes: number): string {
  const text = unitText();
  return `${text}#${'p'.repeat(Math.max(0, bytes - text.length - 2))}\n`;
}

/**
 * Calls that must answer at once. A hang shows as DEADLINE_EXCEEDED at CALL_TIMEOUT_MS (20 s);
 * this only needs to be below that, and generous on a loaded machine.
 */
const ANSWER_MS = 15_000;

test('a bad line of 100 KB is refused at once, quoting a short excerpt of it', async (t) => {
  const api = await startApi(t, server());
  // é is percent-encoded to 6 bytes in a gRPC status message: quoted whole, this one would be
  // 600 KB, more than a client reads, and the call would hang until its deadline.
  const contents = `${unitText()}Environment=${'é'.repeat(100_000)}\n`;
  const started = Date.now();
  const err = await failure(api.submit({ files: [{ name: 'big.service', contents }] }));
  t.true(Date.now() - started < ANSWER_MS, `answered after ${Date.now() - started} ms`);
  t.is(err.code, status.INVALID_ARGUMENT);
  t.regex(err.details, /^big\.service:\d+: Environment=: "é{64}…\(200000 bytes\)" is not an/);
  t.true(err.details.length < 300, err.details);
  t.deepEqual(await unitNames(api.store), []);
});

test('many bad files, one named by 1 MB: the first MAX_PROBLEMS problems arrive at once', async (t) => {
  const api = await startApi(t, server());
  const junk = (lines: number): string => `${unitText()}${'junk line\n'.repeat(lines)}`;
  const files = [{ name: 'n'.repeat(1_000_000), contents: junk(1) }];
  for (let i = 0; i < 40; i++)
    files.push({ name: `bad${i}-${'x'.repeat(40)}.service`, contents: junk(3) });
  const started = Date.now();
  const err = await failure(api.submit({ files }));
  t.true(Date.now() - started < ANSWER_MS, `answered after ${Date.now() - started} ms`);
  t.is(err.code, status.INVALID_ARGUMENT);
  const lines = err.details.split('\n');
  t.is(lines.length, MAX_PROBLEMS);
  t.regex(lines[0] ?? '', /^n{256}…\(1000000 bytes\): invalid unit name "n{80}…\(1000000 bytes\)"/);
  t.regex(lines[2] ?? '', /^bad0-x{40}\.service:\d+: "junk line" is not a Key=Value assignment/);
  t.deepEqual(await unitNames(api.store), []);
});

test('a file over 256 KiB is INVALID_ARGUMENT naming it and the limit; nothing is written', async (t) => {
  const api = await startApi(t, server());
  await api.submit({ files: [{ name: 'keep.service', contents: unitText() }] });
  const before = await fingerprint(api.store);
  const err = await failure(
    api.submit({
      files: [
        { name: 'small.service', contents: unitText() },
        { name: 'big.service', contents: paddedUnit(UNIT_FILE_MAX_BYTES + 1) },
      ],
    }),
  );
  t.is(err.code, status.INVALID_ARGUMENT);
  t.is(
    err.details,
    `big.service: the file is 256 KiB (${UNIT_FILE_MAX_BYTES + 1} bytes); a unit file may be at most 256 KiB`,
  );
  t.deepEqual(await fingerprint(api.store), before);
});

test('files over 1 MiB together are INVALID_ARGUMENT naming the limit, not an etcd error', async (t) => {
  const api = await startApi(t, server());
  await api.submit({ files: [{ name: 'keep.service', contents: unitText() }] });
  const before = await fingerprint(api.store);
  // 1.7 MB in all, each file within its own limit: etcd refuses such a transaction.
  const files = Array.from({ length: 7 }, (_, i) => ({
    name: `ok${i}.service`,
    contents: paddedUnit(250_000),
  }));
  const err = await failure(api.submit({ files }));
  t.is(err.code, status.INVALID_ARGUMENT);
  t.regex(
    err.details,
    /^7 unit files of 1\.67 MiB \(1750000 bytes\) in one request: at most 1 MiB/,
  );
  t.regex(err.details, /send them in smaller groups$/);
  t.deepEqual(await fingerprint(api.store), before);
  // Four of them fit.
  const res = await api.submit({ files: files.slice(0, 4) });
  t.is(res.created.length, 4);
});

test('the largest submit just over the limit still reaches the API and names the limit', async (t) => {
  // What the API reads at most (API_MAX_RECEIVE_BYTES) must leave room above SUBMIT_MAX_BYTES
  // for a full transaction's names, or this would be grpc-js's RESOURCE_EXHAUSTED instead.
  const api = await startApi(t, server());
  const each = Math.ceil((SUBMIT_MAX_BYTES + 1) / MAX_TXN_OPS);
  const files = Array.from({ length: MAX_TXN_OPS }, (_, i) => ({
    name: `${String(i).padStart(3, '0')}${'n'.repeat(UNIT_NAME_MAX - 11)}.service`,
    contents: paddedUnit(each),
  }));
  t.is(files[0]?.name.length, UNIT_NAME_MAX);
  const err = await failure(api.submit({ files }));
  t.is(err.code, status.INVALID_ARGUMENT, err.details);
  t.regex(err.details, /^128 unit files of 1 MiB \(\d+ bytes\) in one request: at most 1 MiB/);
  t.deepEqual(await unitNames(api.store), []);
});

test('a request too large to be read is RESOURCE_EXHAUSTED with its size and the limit', async (t) => {
  const api = await startApi(t, server());
  const err = await failure(
    api.submit({ files: [{ name: 'huge.service', contents: paddedUnit(5_000_000) }] }),
  );
  t.is(err.code, status.RESOURCE_EXHAUSTED);
  t.regex(err.details, /larger than max \(\d+ vs\.? \d+\)/);
  t.deepEqual(await unitNames(api.store), []);
});

test('a status message too long for a gRPC trailer is cut after a whole line, saying so', (t) => {
  const line = (i: number): string =>
    `u${i}.service:${i}: Environment=: "ééé" is not an assignment`;
  const long = Array.from({ length: 2000 }, (_, i) => line(i)).join('\n');
  const cut = boundDetails(long);
  t.true(encodeURI(cut).length <= MAX_STATUS_DETAILS, `${encodeURI(cut).length} bytes encoded`);
  const lines = cut.split('\n');
  const shown = lines.length - 1;
  t.deepEqual(lines.slice(0, shown), long.split('\n').slice(0, shown), 'whole lines, in order');
  t.is(
    lines.at(-1),
    `…(${2000 - shown} more lines not shown; ${Buffer.byteLength(long)} bytes in all)`,
  );
  t.is(boundDetails('short\nmessage'), 'short\nmessage');
  t.notThrows(() => encodeURI(boundDetails('lone \ud800 surrogate')), 'grpc-js can encode it');
});

/**
 * flotctl's verbs about unit files and machines, against the real API server over a real
 * etcd: submit (all or nothing, --replace), cat, list-unit-files, destroy of units no machine
 * runs, plan, list-machines, drain/undrain, and `-o json` of each. No scheduler is needed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import test from 'ava';
import { UnitsService, type UnitsServer } from '../../proto/flotilla/v1/units.js';
import { codecs } from '../../store/index.js';
import { makeUnit, etcdForFile, unitText } from '../../testkit/index.js';
import {
  addMachine,
  EXAMPLES,
  fingerprint,
  flotctl,
  parseJson,
  startTestApi,
  unitDir,
} from './cli-kit.js';

const server = etcdForFile(test);

const GOOD = ['hello.service', 'web@.service', 'db.service', 'api@.service'];
const BAD = readdirSync(`${EXAMPLES}bad/`);

test('submit writes every file, cat returns each byte for byte, list-unit-files lists them', async (t) => {
  const api = await startTestApi(t, server());
  const r = await api.run(['submit', ...GOOD.map((f) => EXAMPLES + f)]);
  t.is(r.code, 0, r.stdout + r.stderr);
  for (const f of GOOD)
    t.regex(r.stdout, new RegExp(`^Unit ${f.replace('.', '\\.')} submitted$`, 'm'));
  for (const f of GOOD) {
    const cat = await api.run(['cat', f]);
    t.is(cat.code, 0, cat.stdout + cat.stderr);
    t.is(cat.stdout, readFileSync(EXAMPLES + f, 'utf8'), `cat ${f}`);
  }
  const list = await api.run(['list-unit-files']);
  t.is(list.code, 0, list.stdout + list.stderr);
  const lines = list.stdout.trimEnd().split('\n');
  t.deepEqual(lines[0]?.split(/\s+/), ['UNIT', 'HASH', 'DSTATE', 'STATE', 'TARGET']);
  t.deepEqual(
    lines.slice(1).map((l) => l.split(/\s+/)[0]),
    [...GOOD].sort(),
  );
  for (const line of lines.slice(1)) {
    const [, hash, dstate, state, target] = line.split(/\s+/);
    t.regex(hash ?? '', /^[0-9a-f]{7}$/, 'hashes are shortened to 7 characters');
    t.is(dstate, 'inactive');
    t.is(state, 'inactive');
    t.is(target, '-');
  }
  const full = await api.run([
    'list-unit-files',
    '--full',
    '--no-legend',
    '--fields',
    'unit,hash,desc',
  ]);
  t.regex(full.stdout, /^hello\.service\s+[0-9a-f]{64}\s+Prints a line every second$/m);
  t.notRegex(full.stdout, /UNIT/, '--no-legend drops the header');
});

test('resubmitting is a no-op; a different file needs --replace, and then replaces it', async (t) => {
  const api = await startTestApi(t, server());
  const v1 = await unitDir(t, { 'app.service': unitText({ description: 'one' }) });
  const v2 = await unitDir(t, { 'app.service': unitText({ description: 'two' }) });
  t.is((await api.run(['submit', `${v1}/app.service`])).code, 0);
  const again = await api.run(['submit', `${v1}/app.service`]);
  t.is(again.code, 0);
  t.regex(again.stdout, /Unit app\.service unchanged/);
  const before = await fingerprint(api.store);
  const clash = await api.run(['submit', `${v2}/app.service`]);
  t.is(clash.code, 1);
  t.regex(
    clash.stderr,
    /app\.service: a different unit of that name exists \(use --replace to overwrite it\)/,
  );
  t.deepEqual(await fingerprint(api.store), before, 'a refused submit writes nothing');
  const replaced = await api.run(['submit', '--replace', `${v2}/app.service`]);
  t.is(replaced.code, 0, replaced.stdout + replaced.stderr);
  t.regex(replaced.stdout, /Unit app\.service replaced/);
  t.regex((await api.run(['cat', 'app'])).stdout, /Description=two/, 'cat app means app.service');
});

for (const bad of BAD) {
  test(`submit of bad/${bad} with good files is refused with FILE:LINE and nothing is written`, async (t) => {
    const api = await startTestApi(t, server());
    const before = await fingerprint(api.store);
    const r = await api.run(['submit', `${EXAMPLES}hello.service`, `${EXAMPLES}bad/${bad}`]);
    t.is(r.code, 1);
    t.is(r.stdout, '');
    const problem = r.stderr.split('\n')[0] ?? '';
    t.true(problem.startsWith(bad), r.stderr);
    if (bad !== 'bad name!.service') t.regex(problem, /^[^:]+:\d+: \S/, 'names the line');
    t.deepEqual(await fingerprint(api.store), before, 'nothing written, not even hello.service');
  });
}

test('submit of a file that cannot be read fails before anything is sent', async (t) => {
  const api = await startTestApi(t, server());
  const r = await api.run(['submit', `${EXAMPLES}hello.service`, `${EXAMPLES}nope.service`]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^cannot read .*nope\.service \(ENOENT\)\n$/);
  t.deepEqual(await fingerprint(api.store), []);
});

test('cat and destroy of an unknown unit exit 1 naming it; destroy of several is all or nothing', async (t) => {
  const api = await startTestApi(t, server());
  await api.run(['submit', `${EXAMPLES}hello.service`]);
  const cat = await api.run(['cat', 'ghost.service']);
  t.is(cat.code, 1);
  t.regex(cat.stderr, /ghost\.service is not a submitted unit/);
  const before = await fingerprint(api.store);
  const destroy = await api.run(['destroy', 'hello.service', 'ghost.service']);
  t.is(destroy.code, 1);
  t.regex(destroy.stderr, /ghost\.service is not a submitted unit/);
  t.deepEqual(await fingerprint(api.store), before);
});

test('destroy of submitted units that never ran removes them at once', async (t) => {
  const api = await startTestApi(t, server());
  await api.run(['submit', `${EXAMPLES}hello.service`, `${EXAMPLES}db.service`]);
  const r = await api.run(['destroy', `${EXAMPLES}hello.service`, 'db']);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /Unit hello\.service destroyed/, 'a path names the unit of its basename');
  t.regex(r.stdout, /Unit db\.service destroyed/);
  t.deepEqual((await api.store.list(api.store.keys.dir('unit'))).items, []);
});

test('-o json of submit, cat, list-unit-files and destroy parses and carries the records', async (t) => {
  const api = await startTestApi(t, server());
  const submit = await api.run(['-o', 'json', 'submit', `${EXAMPLES}hello.service`]);
  const submitted = parseJson(t, submit.stdout) as { created: string[]; revision: string };
  t.deepEqual(submitted.created, ['hello.service']);
  t.regex(submitted.revision, /^\d+$/, 'revisions are decimal strings');
  const cat = parseJson(t, (await api.run(['cat', 'hello', '-o', 'json'])).stdout) as {
    name: string;
    file: string;
  };
  t.is(cat.name, 'hello.service');
  t.is(cat.file, readFileSync(`${EXAMPLES}hello.service`, 'utf8'));
  const files = parseJson(t, (await api.run(['list-unit-files', '--output=json'])).stdout);
  t.true(Array.isArray(files));
  t.deepEqual((files as Record<string, unknown>[])[0], {
    unit: 'hello.service',
    hash: (files as { hash: string }[])[0]?.hash,
    dstate: 'inactive',
    state: 'inactive',
    machine: null,
    ip: null,
    global: false,
  });
  t.regex((files as { hash: string }[])[0]?.hash ?? '', /^[0-9a-f]{64}$/, 'the full hash');
  const destroyed = parseJson(t, (await api.run(['destroy', '-ojson', 'hello'])).stdout) as {
    destroyed: string[];
    units: { name: string; reached: boolean }[];
  };
  t.deepEqual(destroyed.destroyed, ['hello.service']);
  t.deepEqual(destroyed.units, [
    {
      name: 'hello.service',
      target: 'gone',
      reached: true,
      currentState: 'destroyed',
      machine: '',
    },
  ]);
});

test('list-machines shows fleetctl columns plus units, CPU, memory, driver and state; json parses', async (t) => {
  const api = await startTestApi(t, server());
  const a = await addMachine(api.store, {
    addresses: ['10.0.0.1'],
    metadata: { region: 'eu', disk: 'ssd' },
  });
  await addMachine(api.store, { addresses: ['10.0.0.2'], driver: 'runc' });
  const r = await api.run(['list-machines']);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.is(
    r.stderr,
    'WARNING: no scheduler leads: units are neither placed nor moved until one runs (flotilla scheduler)\n',
  );
  const lines = r.stdout.trimEnd().split('\n');
  t.deepEqual(lines[0]?.split(/\s+/), [
    'MACHINE',
    'IP',
    'METADATA',
    'UNITS',
    'CPU',
    'MEMORY',
    'DRIVER',
    'STATE',
  ]);
  const row = lines.find((l) => l.includes('10.0.0.1')) ?? '';
  t.deepEqual(row.split(/\s+/), [
    `${a.id.slice(0, 8)}...`,
    '10.0.0.1',
    'disk=ssd,region=eu',
    '0',
    '0/4',
    '0/8GiB',
    'process',
    'ready',
  ]);
  t.regex(r.stdout, /10\.0\.0\.2\s+-\s+0\s+0\/4\s+0\/8GiB\s+runc\s+ready$/m);
  const full = await api.run([
    'list-machines',
    '--full',
    '--no-legend',
    '--fields',
    'machine,drained',
  ]);
  t.regex(full.stdout, new RegExp(`^${a.id}\\s+false$`, 'm'));
  const json = parseJson(t, (await api.run(['list-machines', '-o', 'json'])).stdout) as {
    machine: { id: string; capacity: { memoryBytes: string } };
  }[];
  t.is(json.length, 2);
  t.is(
    json.find((m) => m.machine.id === a.id)?.machine.capacity.memoryBytes,
    String(8n * 1024n ** 3n),
  );
});

test('drain and undrain set the flag by id prefix; an unknown machine exits 1', async (t) => {
  const api = await startTestApi(t, server());
  const m = await addMachine(api.store);
  const drain = await api.run(['drain', m.id.slice(0, 10)]);
  t.is(drain.code, 0, drain.stdout + drain.stderr);
  t.regex(drain.stdout, new RegExp(`Machine ${m.id} drained`));
  const config = await api.store.getRecord(
    codecs['machine-metadata'],
    api.store.keys.machineMetadata(m.id),
  );
  t.true(config?.value.drained);
  t.regex((await api.run(['list-machines', '--fields', 'machine,drained'])).stdout, /true/);
  const undrain = await api.run(['undrain', m.id, '-o', 'json']);
  t.is(undrain.code, 0, undrain.stdout + undrain.stderr);
  t.false((parseJson(t, undrain.stdout) as { drained?: boolean }).drained ?? false);
  const unknown = await api.run(['drain', 'ffffffffffff']);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /machine ffffffffffff is not known/);
});

test('plan shows where units would go and why one cannot, writes nothing, exits 1 then', async (t) => {
  const api = await startTestApi(t, server());
  const m = await addMachine(api.store, { addresses: ['10.0.0.7'] });
  await api.run(['submit', `${EXAMPLES}web@.service`]);
  const dir = await unitDir(t, {
    'eu.service': unitText({ xfleet: { MachineMetadata: 'region=eu' } }),
  });
  const before = await fingerprint(api.store);
  const r = await api.run(['plan', 'web@1', 'web@2.service', `${dir}/eu.service`]);
  t.is(r.code, 1, 'exit 1: not every unit can be placed');
  t.regex(
    r.stdout,
    new RegExp(`^web@1\\.service\\s+${m.id.slice(0, 8)}\\.\\.\\./10\\.0\\.0\\.7\\s+-\\s+-$`, 'm'),
  );
  t.regex(r.stdout, /^web@2\.service\s+-\s+-\s+0\/1 machines: .*conflict/m);
  t.regex(r.stdout, /^eu\.service\s+-\s+-\s+0\/1 machines: .*region/m);
  t.regex(r.stdout, /1 of 3 units can be placed on 1 machine/);
  t.deepEqual(await fingerprint(api.store), before, 'plan writes nothing');
  const ok = await api.run(['plan', '-o', 'json', 'web@1']);
  t.is(ok.code, 0, ok.stdout + ok.stderr);
  const json = parseJson(t, ok.stdout) as {
    units: { name: string; machine: string }[];
    machines: number;
  };
  t.deepEqual(json, { units: [{ name: 'web@1.service', machine: m.id }], machines: 1 });
});

test('list-unit-files and list-units fetch every page of a listing larger than one page', async (t) => {
  const api = await startTestApi(t, server());
  const names = Array.from({ length: 1005 }, (_, i) => `svc-${String(i).padStart(4, '0')}.service`);
  for (let i = 0; i < names.length; i += 100) {
    await Promise.all(
      names
        .slice(i, i + 100)
        .map((name) =>
          api.store.putRecord(codecs.unit, api.store.keys.unit(name), makeUnit({ name })),
        ),
    );
  }
  // Pages of 100: eleven round trips, each page printed as it arrives.
  const env = { FLOTCTL_PAGE_SIZE: '100' };
  const files = await api.run(['list-unit-files', '--no-legend', '--fields', 'unit'], { env });
  t.is(files.code, 0, files.stdout + files.stderr);
  t.deepEqual(files.stdout.trimEnd().split('\n'), names, 'all 1005, in order, none twice');
  const units = await api.run(['-o', 'json', 'list-units'], { env });
  const listed = parseJson(t, units.stdout) as { unit: string }[];
  t.deepEqual(
    listed.map((s) => s.unit),
    names,
  );
  const bad = await api.run(['list-units'], { env: { FLOTCTL_PAGE_SIZE: '5001' } });
  t.is(bad.code, 2);
  t.regex(bad.stderr, /FLOTCTL_PAGE_SIZE=5001: expected a whole number from 1 to 5000/);
});

test('submit and destroy of more units than one transaction holds: checked first, sent in runs of 128', async (t) => {
  const api = await startTestApi(t, server());
  const names = Array.from({ length: 300 }, (_, i) => `bulk-${String(i).padStart(3, '0')}.service`);
  const dir = await unitDir(t, {
    ...Object.fromEntries(names.map((n) => [n, unitText()])),
    'zz-bad.service': '[X-Fleet]\nColour=blue\n',
  });
  const refused = await api.run([
    'submit',
    ...names.map((n) => `${dir}/${n}`),
    `${dir}/zz-bad.service`,
  ]);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /zz-bad\.service:2: .*Colour/);
  t.deepEqual(await fingerprint(api.store), [], 'one bad file among 301: nothing written');

  const submit = await api.run(['-o', 'json', 'submit', ...names.map((n) => `${dir}/${n}`)]);
  t.is(submit.code, 0, submit.stdout + submit.stderr);
  t.is((parseJson(t, submit.stdout) as { created: string[] }).created.length, 300);
  const { items } = await api.store.list(api.store.keys.dir('unit'));
  t.is(items.length, 300);
  const perRevision = new Map<bigint, number>();
  for (const kv of items)
    perRevision.set(kv.modRevision, (perRevision.get(kv.modRevision) ?? 0) + 1);
  t.deepEqual([...perRevision.values()], [128, 128, 44]);

  // An unknown name at the end, in the third run of 128: refused before the first is sent.
  const before = await fingerprint(api.store);
  const start = await api.run(['start', '--no-block', ...names, 'ghost.service']);
  t.is(start.code, 1);
  t.regex(start.stderr, /^ghost\.service is not a submitted unit/);
  const gone = await api.run(['destroy', ...names, 'ghost.service']);
  t.is(gone.code, 1);
  t.deepEqual(await fingerprint(api.store), before, 'nothing started, nothing destroyed');

  const destroy = await api.run(['destroy', ...names]);
  t.is(destroy.code, 0, destroy.stdout + destroy.stderr);
  t.is(destroy.stdout.split('\n').filter((l) => / destroyed$/.test(l)).length, 300);
  t.deepEqual((await api.store.list(api.store.keys.dir('unit'))).items, []);
});

/** A valid unit file of `bytes` bytes, padded with a comment. */
function paddedUnit(bytes: number): string {
  const text = unitText();
  return `${text}#${'p'.repeat(bytes - text.length - 2)}\n`;
}

test('submit of a file whose bad line is 100 KB answers at once, quoting a short excerpt', async (t) => {
  const api = await startTestApi(t, server());
  const dir = await unitDir(t, {
    'big.service': `${unitText()}Environment=\x1b[31m${'é'.repeat(100_000)}\n`,
  });
  const r = await api.run(['submit', `${dir}/big.service`]);
  t.is(r.code, 1);
  // A hang would print "did not answer within 10s" instead of the message below.
  t.regex(r.stderr, /^big\.service:\d+: Environment=: "\\x1b\[31mé+…\(200005 bytes\)" is not an/);
  t.true(r.stderr.length < 300, r.stderr);
  t.deepEqual(await fingerprint(api.store), []);
});

test('submit of a file over 256 KiB is refused before sending, naming the file and the limit', async (t) => {
  const api = await startTestApi(t, server());
  const dir = await unitDir(t, {
    'small.service': unitText(),
    'big.service': paddedUnit(300_000),
  });
  for (const verb of [['submit'], ['start', '--no-block'], ['plan']]) {
    const r = await api.run([...verb, `${dir}/small.service`, `${dir}/big.service`]);
    t.is(r.code, 1, verb[0]);
    t.is(
      r.stderr,
      `${dir}/big.service: the file is 293 KiB (300000 bytes); a unit file may be at most 256 KiB\n`,
    );
  }
  t.deepEqual(await fingerprint(api.store), [], 'not even small.service');
});

test('submit of files over 1 MiB together is refused before sending, naming the limit', async (t) => {
  const api = await startTestApi(t, server());
  const names = Array.from({ length: 7 }, (_, i) => `ok${i}.service`);
  const dir = await unitDir(t, Object.fromEntries(names.map((n) => [n, paddedUnit(250_000)])));
  const r = await api.run(['submit', ...names.map((n) => `${dir}/${n}`)]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^7 unit files of 1\.67 MiB \(1750000 bytes\) in one request: at most 1 MiB/);
  t.deepEqual(await fingerprint(api.store), []);
  const four = await api.run(['submit', ...names.slice(0, 4).map((n) => `${dir}/${n}`)]);
  t.is(four.code, 0, four.stderr);
});

test('verify names a file over 256 KiB and the limit, and quotes a 100 KB bad line briefly', async (t) => {
  const dir = await unitDir(t, {
    'big.service': paddedUnit(300_000),
    'long.service': `${unitText()}${'x'.repeat(100_000)}\n`,
  });
  const r = await flotctl(['verify', `${dir}/big.service`, `${dir}/long.service`]);
  t.is(r.code, 1);
  t.deepEqual(r.stdout.split('\n'), [
    `${dir}/big.service: the file is 293 KiB (300000 bytes); a unit file may be at most 256 KiB`,
    `${dir}/long.service:6: "${'x'.repeat(64)}…(100000 bytes)" is not a Key=Value assignment (missing "=")`,
    '',
  ]);
});

test('a request larger than the API reads is one line naming its size and the limit', async (t) => {
  // An API that reads less than flotctl sends (another version, another limit): grpc-js
  // refuses the request itself, with RESOURCE_EXHAUSTED.
  const small = new Server({ 'grpc.max_receive_message_length': 64 * 1024 });
  small.addService(UnitsService, {} as UnitsServer);
  const port = await new Promise<number>((resolve, reject) =>
    small.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
      err === null ? resolve(p) : reject(err),
    ),
  );
  t.teardown(() => small.forceShutdown());
  const dir = await unitDir(t, { 'big.service': paddedUnit(100_000) });
  const r = await flotctl(['--endpoint', `127.0.0.1:${port}`, 'submit', `${dir}/big.service`]);
  t.is(r.code, 1);
  t.regex(
    r.stderr,
    /^the request is 98 KiB \(\d+ bytes\), more than the 64 KiB the Flotilla API at 127\.0\.0\.1:\d+ reads in one call: send fewer or smaller unit files at once \(a unit file may be at most 256 KiB, one submit at most 1 MiB\)\n$/,
  );
});

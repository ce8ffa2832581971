/**
 * `flotctl -o json list-units`: one flat object per table row, with what the table shows plus
 * the full ids, numbers as numbers and null for "-"; the unit file's text only when
 * `--fields` names it. Against the real API over a real etcd, the agents' reports written as
 * the agents write them (sim-cluster.ts).
 */
import test from 'ava';
import { etcdForFile, unitText } from '../../testkit/index.js';
import { addMachine, parseJson, startTestApi, unitDir } from './cli-kit.js';
import { simulateCluster } from './sim-cluster.js';

const server = etcdForFile(test);

test('-o json list-units rows are flat: the columns, full ids, numbers as numbers, no file unless asked', async (t) => {
  const api = await startTestApi(t, server());
  const m = await addMachine(api.store, { addresses: ['10.0.0.7'] });
  simulateCluster(t, api.store, {
    machines: [m],
    unplaceable: (n) => (n === 'far.service' ? '0/1 machines: 1 lacks region=mars' : undefined),
  });
  const text = unitText({ description: 'a web server' });
  const dir = await unitDir(t, { 'web.service': text, 'far.service': unitText() });
  const started = await api.run(['start', '--timeout', '30s', `${dir}/web.service`]);
  t.is(started.code, 0, started.stderr);
  await api.run(['start', '--no-block', `${dir}/far.service`]);
  let rows: Record<string, unknown>[] = [];
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const r = await api.run(['-o', 'json', 'list-units']);
    t.is(r.code, 0, r.stderr);
    rows = parseJson(t, r.stdout) as Record<string, unknown>[];
    if (rows.find((u) => u['unit'] === 'far.service')?.['reason'] !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const web = rows.find((u) => u['unit'] === 'web.service') ?? {};
  t.like(web, {
    unit: 'web.service',
    machine: m.id,
    ip: '10.0.0.7',
    active: 'active',
    sub: 'running',
    status: 'active/running',
    dstate: 'launched',
    state: 'launched',
    reason: null,
    health: null,
    global: false,
  });
  t.regex(String(web['hash']), /^[0-9a-f]{64}$/, 'the full hash');
  t.is(typeof web['restarts'], 'number');
  t.true(web['pid'] === null || typeof web['pid'] === 'number');
  t.true(
    Object.values(web).every((v) => v === null || typeof v !== 'object'),
    'flat: no nested objects',
  );
  t.false('file' in web, 'no unit file unless asked');
  t.false('desc' in web);
  t.like(
    rows.find((u) => u['unit'] === 'far.service'),
    {
      machine: null,
      active: null,
      pid: null,
      restarts: null,
      state: 'inactive',
      reason: '0/1 machines: 1 lacks region=mars',
    },
  );
  // Every row has the same keys.
  t.deepEqual(
    rows.map((u) => Object.keys(u).join(',')),
    rows.map(() => Object.keys(web).join(',')),
  );
  // --fields picks keys, in its order; file and desc only when named.
  const picked = await api.run(['-o', 'json', 'list-units', '--fields', 'unit,file,desc', 'web*']);
  t.deepEqual(parseJson(t, picked.stdout), [
    { unit: 'web.service', file: text, desc: 'a web server' },
  ]);
  const bad = await api.run(['-o', 'json', 'list-units', '--fields', 'unit,colour']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--fields: unknown key "colour" for -o json \(valid: unit,machine,ip,/);
});

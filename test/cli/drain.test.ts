/**
 * `flotctl drain` says, per unit, what draining will do, from the scheduler's planner before
 * anything is drained: the machine a unit moves to, why it would wait for one, or that a
 * Global unit's copy there is removed; `--dry-run` says it and drains nothing. Against the
 * real API over a real etcd, with machines and placements written as agents and a leader
 * would have written them (no scheduler runs: the plan is the API's dry run).
 */
import test from 'ava';
import { place } from '../agent/daemon-harness.js';
import { codecs } from '../../store/index.js';
import { etcdForFile } from '../../testkit/index.js';
import { addMachine, fingerprint, startTestApi } from './cli-kit.js';

const server = etcdForFile(test);

const WEB = '[Service]\nExecStart=/bin/sleep 3600\n[X-Fleet]\nConflicts=web@*.service\n';
const SSD = '[Service]\nExecStart=/bin/sleep 3600\n[X-Fleet]\nMachineMetadata=disk=ssd\n';
const GLOBAL = '[Service]\nExecStart=/bin/sleep 3600\n[X-Fleet]\nGlobal=true\n';

async function cluster(t: Parameters<typeof startTestApi>[0]) {
  const api = await startTestApi(t, server());
  const [a, b, c] = await Promise.all([
    addMachine(api.store, {
      id: 'aaaa0000000000000000000000000001',
      addresses: ['10.0.0.1'],
      metadata: { disk: 'ssd' },
    }),
    addMachine(api.store, { id: 'bbbb0000000000000000000000000002', addresses: ['10.0.0.2'] }),
    addMachine(api.store, { id: 'cccc0000000000000000000000000003', addresses: ['10.0.0.3'] }),
  ]);
  await place(api.store, a.id, 'web@1.service', WEB);
  await place(api.store, b.id, 'web@2.service', WEB);
  await place(api.store, a.id, 'db.service', SSD);
  for (const m of [a, b, c]) await place(api.store, m.id, 'mon.service', GLOBAL);
  return { api, a };
}

const LINES = [
  // The planner's own wording of the drained machine ("1 are drained") is another issue's.
  /^ {2}db\.service +waits for a machine: 0\/3 machines: 2 lack disk=ssd, 1 (is|are) drained$/m,
  /^ {2}mon\.service +Global: its copy here is removed$/m,
  /^ {2}web@1\.service +moves to cccc0000\.\.\.\/10\.0\.0\.3$/m,
];

test('drain --dry-run says what would happen to each unit and drains nothing', async (t) => {
  const { api, a } = await cluster(t);
  const before = await fingerprint(api.store);
  const r = await api.run(['drain', '--dry-run', 'aaaa']);
  t.is(r.code, 0, r.stderr);
  t.true(
    r.stdout.startsWith(`Draining machine ${a.id} would keep new units away; of its 3 units:\n`),
    r.stdout,
  );
  for (const line of LINES) t.regex(r.stdout, line);
  t.true(r.stdout.endsWith('Nothing was drained (--dry-run).\n'), r.stdout);
  t.deepEqual(await fingerprint(api.store), before, 'nothing written');
});

test('drain says per unit what will happen, then drains', async (t) => {
  const { api, a } = await cluster(t);
  const r = await api.run(['drain', 'aaaa']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.split('\n')[0], `Machine ${a.id} drained: it takes no new units; of its 3 units:`);
  for (const line of LINES) t.regex(r.stdout, line);
  t.is(r.stdout.split('\n').length, 5, r.stdout);
  const config = await api.store.getRecord(
    codecs['machine-metadata'],
    api.store.keys.machineMetadata(a.id),
  );
  t.true(config?.value.drained);
});

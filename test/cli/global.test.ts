/**
 * flotctl and a Global unit placed on two machines, against the real API server over a real
 * etcd; placements and each machine's copy state (states/<name>/<machine>) are written
 * straight to etcd as the leader and the agents write them. list-units shows one row per
 * machine, status every copy, watch names the machine of a copy's state change.
 */
import test from 'ava';
import { Placement, UnitState, type Machine } from '../../proto/flotilla/v1/records.js';
import { codecs, type Store } from '../../store/index.js';
import { etcdForFile, makeUnit, unitText } from '../../testkit/index.js';
import { addMachine, parseJson, startTestApi } from './cli-kit.js';

const server = etcdForFile(test);

const MON = 'mon.service';
const MON_FILE = unitText({ description: 'runs everywhere', xfleet: { Global: 'true' } });

async function place(store: Store, machine: string): Promise<void> {
  const p = Placement.fromPartial({ unit: MON, machine, hash: 'h', desiredState: 'launched' });
  await store.putRecord(codecs.placement, store.keys.placement(machine, MON), p);
}

/** Writes `machine`'s copy of mon.service, as that machine's agent does. */
async function reportCopy(store: Store, machine: string, fields: Partial<UnitState>) {
  const s = UnitState.fromPartial({
    name: MON,
    machine,
    loadState: 'loaded',
    since: BigInt(Date.now() - 5_000),
    ...fields,
  });
  await store.putRecord(codecs.state, store.keys.globalState(MON, machine), s);
}

/** An API with two machines (sorted by id) and mon.service on both, one running, one failed. */
async function globalOnTwo(t: Parameters<typeof startTestApi>[0]) {
  const api = await startTestApi(t, server());
  const machines: Machine[] = [
    await addMachine(api.store, { addresses: ['10.0.0.1'] }),
    await addMachine(api.store, { addresses: ['10.0.0.2'] }),
  ].sort((x, y) => (x.id < y.id ? -1 : 1));
  const [a, b] = machines.map((m) => m.id) as [string, string];
  await api.store.putRecord(
    codecs.unit,
    api.store.keys.unit(MON),
    makeUnit({ name: MON, file: MON_FILE }),
  );
  await place(api.store, a);
  await place(api.store, b);
  await reportCopy(api.store, a, { activeState: 'active', subState: 'running', pid: 111 });
  await reportCopy(api.store, b, {
    activeState: 'failed',
    subState: 'failed',
    restarts: 3,
    exitStatus: 2,
    message: 'exit status 2',
  });
  return { api, machines, a, b };
}

test('list-units shows one row per machine of a Global unit, each with its own state', async (t) => {
  const { api, machines, a, b } = await globalOnTwo(t);
  const r = await api.run(['list-units', '--fields', 'unit,machine,active,sub,pid,state']);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.is(lines.length, 3, r.stdout);
  t.regex(lines[0] ?? '', /^UNIT\s+MACHINE\s+ACTIVE\s+SUB\s+PID\s+STATE$/);
  const ip = (i: number) => machines[i]?.addresses[0]?.replace(/\./g, '\\.') ?? '';
  t.regex(
    lines[1] ?? '',
    new RegExp(
      `^mon\\.service\\s+${a.slice(0, 8)}\\.\\.\\./${ip(0)}\\s+active\\s+running\\s+111\\s+launched$`,
    ),
  );
  t.regex(
    lines[2] ?? '',
    new RegExp(
      `^mon\\.service\\s+${b.slice(0, 8)}\\.\\.\\./${ip(1)}\\s+failed\\s+failed\\s+0\\s+loaded$`,
    ),
  );

  const onB = await api.run([
    'list-units',
    '--no-legend',
    '--machine',
    b,
    '--fields',
    'machine,active',
  ]);
  t.regex(onB.stdout, new RegExp(`^${b.slice(0, 8)}\\.\\.\\./${ip(1)}\\s+failed\\n$`));

  // -o json: one flat row per copy, as the table, each with its machine's own state.
  const json = await api.run(['-o', 'json', 'list-units']);
  const rows = parseJson(t, json.stdout) as Record<string, unknown>[];
  t.deepEqual(
    rows.map((r) => [r['unit'], r['machine'], r['active'], r['state'], r['global']]),
    [
      [MON, a, 'active', 'launched', true],
      [MON, b, 'failed', 'loaded', true],
    ],
  );
});

test("status of a Global unit shows every machine's copy", async (t) => {
  const { api, a, b } = await globalOnTwo(t);
  const r = await api.run(['status', '-n', '0', MON]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^● mon\.service - runs everywhere$/m);
  t.regex(r.stdout, /Current:\s+loaded$/m);
  t.regex(r.stdout, /Global:\s+placed on 2 machines, running on 1$/m);
  const blocks = r.stdout.split(/^\s+Machine:/m).slice(1);
  t.is(blocks.length, 2, r.stdout);
  t.regex(blocks[0] ?? '', new RegExp(`^\\s+${a}/10\\.0\\.0\\.\\d \\(launched\\)$`, 'm'));
  t.regex(blocks[0] ?? '', /Active:\s+active \(running\) since .*; \d+s ago$/m);
  t.regex(blocks[0] ?? '', /PID:\s+111$/m);
  t.regex(blocks[0] ?? '', /Restarts:\s+0$/m);
  t.regex(blocks[1] ?? '', new RegExp(`^\\s+${b}/10\\.0\\.0\\.\\d \\(loaded\\)$`, 'm'));
  t.regex(blocks[1] ?? '', /Active:\s+failed \(failed\) since /m);
  t.regex(blocks[1] ?? '', /PID:\s+-$/m);
  t.regex(blocks[1] ?? '', /Restarts:\s+3$/m);
  t.regex(blocks[1] ?? '', /Message:\s+exit status 2$/m);
});

test("watch names the machine of a Global copy's state change", async (t) => {
  const { api, a, b } = await globalOnTwo(t);
  const from = (await api.store.revision()) + 1n;
  await reportCopy(api.store, b, { activeState: 'active', subState: 'running', pid: 222 });
  await api.store.delete(api.store.keys.globalState(MON, a));
  const live = api.spawn(['watch', '--full', '--from-revision', String(from), '--unit', MON]);
  const out = await live.waitFor(/no longer reported/);
  await live.stop();
  const lines = out.trimEnd().split('\n');
  t.is(lines.length, 2, out);
  t.regex(lines[0] ?? '', new RegExp(`\\sstate\\s+mon\\.service\\s+${b}\\s+active/running$`));
  t.regex(lines[1] ?? '', new RegExp(`\\sstate\\s+mon\\.service\\s+${a}\\s+no longer reported$`));
});

import { status } from '@grpc/grpc-js';
import test from 'ava';
import {
  Placement,
  UnitState,
  Unscheduled,
  type Machine,
} from '../../proto/flotilla/v1/records.js';
import { ListUnitsResponse, type UnitStatus } from '../../proto/flotilla/v1/units.js';
import { codecs, type Store } from '../../store/index.js';
import { assertEventually, etcdForFile, makeMachine, makeUnit } from '../../testkit/index.js';
import { failure, listAll, startApi } from './api-kit.js';

const server = etcdForFile(test);

/** Writes units/<name> records straight to etcd, 128 to a transaction, a few at a time. */
async function putUnits(store: Store, names: readonly string[]): Promise<void> {
  const chunks: string[][] = [];
  for (let i = 0; i < names.length; i += 128) chunks.push(names.slice(i, i + 128));
  for (let i = 0; i < chunks.length; i += 4) {
    await Promise.all(
      chunks.slice(i, i + 4).map((chunk) =>
        store.client.kv.txn({
          compare: [],
          success: chunk.map((name) => ({
            request_put: {
              key: Buffer.from(store.keys.unit(name)),
              value: Buffer.from(codecs.unit.encode(makeUnit({ name }))),
            },
          })),
          failure: [],
        }),
      ),
    );
  }
}

async function place(store: Store, unit: string, machine: string): Promise<void> {
  const p = Placement.fromPartial({
    unit,
    machine,
    hash: `hash-of-${unit}`,
    desiredState: 'launched',
  });
  await store.putRecord(codecs.placement, store.keys.placement(machine, unit), p);
}

async function report(store: Store, unit: string, machine: string, activeState: string) {
  const s = UnitState.fromPartial({ name: unit, machine, activeState, loadState: 'loaded' });
  await store.putRecord(codecs.state, store.keys.state(machine, unit), s);
}

async function addMachine(store: Store, id: string): Promise<Machine> {
  const m = makeMachine({ id });
  await store.putRecord(codecs.machine, store.keys.machine(id), m);
  return m;
}

test('paging through 10,000 units sees each unit that exists throughout exactly once, in order', async (t) => {
  const api = await startApi(t, server());
  const names = Array.from({ length: 10_000 }, (_, i) => `u${String(i).padStart(5, '0')}.service`);
  await putUnits(api.store, names);

  const seen: string[] = [];
  const revisions = new Set<bigint>();
  let pageToken = '';
  let pages = 0;
  do {
    const res = await api.list({ pageSize: 1000, pageToken });
    t.true(res.units.length <= 1000);
    revisions.add(res.revision);
    seen.push(...res.units.map((u) => u.unit?.name ?? '?'));
    pageToken = res.nextPageToken;
    pages += 1;
    if (pages === 1) {
      // Each page is read at its own revision: later pages see changes made meanwhile.
      await api.store.delete(api.store.keys.unit('u09999.service'));
      await putUnits(api.store, ['u05000a.service']);
    }
  } while (pageToken !== '');
  // Ten pages of 1,000, or more when composing one took its time budget (PAGE_BUDGET_MS).
  t.true(pages >= 10, `${pages} pages`);
  t.true(revisions.size > 1, 'pages after the change are read at a later revision');
  const expected = [...names.slice(0, 9999), 'u05000a.service'].sort();
  t.deepEqual(seen, expected, 'each unit once, in name order, with the changes');

  const fresh = await api.list({ nameGlob: 'u0999*', pageSize: 1000 });
  t.deepEqual(
    fresh.units.map((u) => u.unit?.name),
    names.slice(9990, 9999),
    'a new listing sees the change',
  );
});

test('a name glob filters the listing and pages still cover every match once', async (t) => {
  const api = await startApi(t, server());
  const names = Array.from({ length: 50 }, (_, i) => `u${String(i).padStart(5, '0')}.service`);
  await putUnits(api.store, [...names, 'other.service', 'web@1.service', 'web@2.service']);
  const pages = await listAll(api, { nameGlob: 'u0001*', pageSize: 3 });
  t.deepEqual(
    pages.flat().map((u) => u.unit?.name),
    names.slice(10, 20),
  );
  t.true(pages.every((p) => p.length <= 3));
  const web = await api.list({ nameGlob: 'web@*.service' });
  t.deepEqual(
    web.units.map((u) => u.unit?.name),
    ['web@1.service', 'web@2.service'],
  );
  t.is((await failure(api.list({ nameGlob: '[a-' }))).code, status.INVALID_ARGUMENT);
  t.is((await failure(api.list({ pageToken: 'garbage' }))).code, status.INVALID_ARGUMENT);
});

test('a listing by names returns just the named units that exist, in name order and paged', async (t) => {
  const api = await startApi(t, server());
  const names = Array.from({ length: 2_000 }, (_, i) => `n${String(i).padStart(5, '0')}.service`);
  await putUnits(api.store, names);
  const asked = [
    'n01999.service',
    'absent.service',
    'n00007.service',
    'n00500.service',
    'n00007.service',
    'n01000.service',
  ];
  const pages = await listAll(api, { names: asked, pageSize: 2 });
  t.deepEqual(
    pages.flat().map((u) => u.unit?.name),
    ['n00007.service', 'n00500.service', 'n01000.service', 'n01999.service'],
  );
  t.deepEqual(
    pages.map((p) => p.length),
    [2, 2],
  );
  // Names narrow a glob's matches, and file text comes only when asked for.
  const both = await api.list({ names: asked, nameGlob: 'n00*', withFiles: true });
  t.deepEqual(
    both.units.map((u) => u.unit?.name),
    ['n00007.service', 'n00500.service'],
  );
  t.not(both.units[0]?.unit?.file, '');
  const many = Array.from({ length: 10_001 }, (_, i) => `x${i}.service`);
  const err = await failure(api.list({ names: many }));
  t.is(err.code, status.INVALID_ARGUMENT);
  t.regex(err.details, /at most 10000/);
});

test('status shows placement, agent state, pending reasons and the derived state', async (t) => {
  const api = await startApi(t, server());
  const m1 = 'aaaa1111';
  const m2 = 'bbbb2222';
  await addMachine(api.store, m1);
  await addMachine(api.store, m2);
  await putUnits(api.store, ['idle.service', 'run.service', 'failed.service', 'placed.service']);
  const pending = Unscheduled.fromPartial({
    unit: 'idle.service',
    machines: 2,
    reasons: [{ reason: 'lack region=mars', machines: 2 }],
    summary: '0/2 machines: 2 lack region=mars',
  });
  await api.store.putRecord(
    codecs.unscheduled,
    api.store.keys.unscheduled('idle.service'),
    pending,
  );
  await place(api.store, 'run.service', m1);
  await report(api.store, 'run.service', m1, 'active');
  await place(api.store, 'failed.service', m1);
  await report(api.store, 'failed.service', m1, 'failed');
  await place(api.store, 'placed.service', m2); // no agent report yet

  const idle = await api.get('idle.service');
  t.is(idle.currentState, 'inactive');
  t.is(idle.placement, undefined);
  t.is(idle.unscheduled?.summary, '0/2 machines: 2 lack region=mars');
  const run = await api.get('run.service');
  t.is(run.currentState, 'launched');
  t.is(run.placement?.machine, m1);
  t.is(run.state?.activeState, 'active');
  const failed = await api.get('failed.service');
  t.is(failed.currentState, 'loaded');
  const placed = await api.get('placed.service');
  t.is(placed.currentState, 'loaded');
  t.is(placed.placement?.machine, m2);
  t.is(placed.state, undefined);

  const all = await api.list({});
  t.deepEqual(
    all.units.map((u) => [u.unit?.name, u.currentState, u.placement?.machine ?? '']),
    [
      ['failed.service', 'loaded', m1],
      ['idle.service', 'inactive', ''],
      ['placed.service', 'loaded', m2],
      ['run.service', 'launched', m1],
    ],
  );
  // A brief listing: the same rows and summary columns, without the details.
  const brief = await api.list({ brief: true });
  const summary = (u: UnitStatus) => [
    u.unit?.name,
    u.unit?.desiredState,
    u.currentState,
    u.placement?.machine ?? '',
    u.state?.activeState ?? '',
    u.addresses[u.placement?.machine ?? ''] ?? '',
  ];
  t.deepEqual(brief.units.map(summary), all.units.map(summary));
  t.true(
    brief.units.some((u) => u.addresses[m1] !== undefined),
    'addresses are kept',
  );
  t.true(all.units.every((u) => u.unit?.hash !== ''));
  t.true(brief.units.every((u) => u.unit?.hash === '' && (u.placement?.hash ?? '') === ''));
  t.true(
    brief.units.every((u) => u.unscheduled === undefined && (u.placement?.epoch ?? 0n) === 0n),
  );
  const sizeOf = (r: typeof all) => ListUnitsResponse.encode(r).finish().length;
  t.true(sizeOf(brief) < sizeOf(all) / 2, `${sizeOf(brief)} of ${sizeOf(all)} bytes`);
  t.is((await failure(api.get('ghost.service'))).code, status.NOT_FOUND);

  // A machine that was lost (no machines/ record) with its placement still in etcd.
  await putUnits(api.store, ['orphan.service']);
  await place(api.store, 'orphan.service', 'lost9999');
  await assertEventually(
    async () => (await api.get('orphan.service')).placement?.machine === 'lost9999',
    {
      message: 'placement on a lost machine is shown',
    },
  );
  const listed = await api.list({ nameGlob: 'orphan.*' });
  t.is(listed.units[0]?.placement?.machine, 'lost9999');
  t.is(listed.units[0]?.currentState, 'loaded');
});

test('the machine filter lists the units placed on that machine, by id prefix', async (t) => {
  const api = await startApi(t, server());
  await addMachine(api.store, 'aaaa1111');
  await addMachine(api.store, 'bbbb2222');
  const names = Array.from({ length: 30 }, (_, i) => `w${String(i).padStart(3, '0')}.service`);
  await putUnits(api.store, names);
  for (const [i, name] of names.entries()) {
    await place(api.store, name, i % 3 === 0 ? 'aaaa1111' : 'bbbb2222');
  }
  await place(api.store, 'destroyed.service', 'aaaa1111'); // placement outliving its unit
  const onA = names.filter((_n, i) => i % 3 === 0);
  const pages = await listAll(api, { machine: 'aaaa', pageSize: 4 });
  t.deepEqual(
    pages.flat().map((u) => u.unit?.name),
    onA,
  );
  t.true(pages.flat().every((u) => u.placement?.machine === 'aaaa1111'));
  const globbed = await api.list({ machine: 'bbbb2222', nameGlob: 'w00*' });
  t.deepEqual(
    globbed.units.map((u) => u.unit?.name),
    [
      'w001.service',
      'w002.service',
      'w004.service',
      'w005.service',
      'w007.service',
      'w008.service',
    ],
  );
  t.is((await failure(api.list({ machine: 'cccc' }))).code, status.NOT_FOUND);
});

/**
 * A Global unit through the API: GetUnit and ListUnits show one instance per machine it is
 * placed on, each with that machine's own state record (states/<name>/<machine>), and derive
 * the unit's state from all of them; paging and the machine filter see every copy; the
 * Events stream names the machine of each copy's state change. Records are written straight
 * to etcd: no scheduler and no agents.
 */
import { type ClientReadableStream } from '@grpc/grpc-js';
import test from 'ava';
import type { Event } from '../../proto/flotilla/v1/events.js';
import { Placement, UnitState, Unscheduled } from '../../proto/flotilla/v1/records.js';
import type { UnitStatus } from '../../proto/flotilla/v1/units.js';
import { codecs, type Store } from '../../store/index.js';
import { etcdForFile, makeMachine, makeUnit, unitText } from '../../testkit/index.js';
import { CALL_TIMEOUT_MS, listAll, startApi } from './api-kit.js';

const server = etcdForFile(test);

const M1 = 'aaaa1111';
const M2 = 'bbbb2222';
const GLOBAL_FILE = unitText({ description: 'on every machine', xfleet: { Global: 'true' } });

async function putUnit(store: Store, name: string, file = unitText()): Promise<void> {
  await store.putRecord(codecs.unit, store.keys.unit(name), makeUnit({ name, file }));
}

async function putMachines(store: Store): Promise<void> {
  for (const id of [M1, M2]) {
    await store.putRecord(codecs.machine, store.keys.machine(id), makeMachine({ id }));
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

/** Writes `machine`'s copy state of the Global unit `unit`, as that machine's agent does. */
async function reportCopy(
  store: Store,
  unit: string,
  machine: string,
  activeState: string,
  pid: number,
): Promise<void> {
  const s = UnitState.fromPartial({ name: unit, machine, activeState, loadState: 'loaded', pid });
  await store.putRecord(codecs.state, store.keys.globalState(unit, machine), s);
}

/** Writes the one state record of a unit that is not Global. */
async function report(store: Store, unit: string, machine: string, activeState: string) {
  const s = UnitState.fromPartial({ name: unit, machine, activeState, loadState: 'loaded' });
  await store.putRecord(codecs.state, store.keys.state(machine, unit), s);
}

/** Per instance: machine, its copy's active state and pid, its derived state. */
function copies(s: UnitStatus | undefined): [string, string, number, string][] {
  return (s?.instances ?? []).map((i) => [
    i.placement?.machine ?? '',
    i.state?.activeState ?? '',
    i.state?.pid ?? 0,
    i.currentState,
  ]);
}

test('GetUnit shows one instance per machine of a Global unit, each with its own state', async (t) => {
  const api = await startApi(t, server());
  const { store } = api;
  await putMachines(store);
  await putUnit(store, 'mon.service', GLOBAL_FILE);
  await place(store, 'mon.service', M2);
  await place(store, 'mon.service', M1);
  await reportCopy(store, 'mon.service', M2, 'active', 22);
  await reportCopy(store, 'mon.service', M1, 'active', 11);

  const both = await api.get('mon.service');
  t.deepEqual(copies(both), [
    [M1, 'active', 11, 'launched'],
    [M2, 'active', 22, 'launched'],
  ]);
  t.is(both.currentState, 'launched', 'every copy runs');
  t.is(both.placement, undefined);
  t.is(both.state, undefined);
  t.is(both.instances[0]?.state?.machine, M1);
  t.is(both.instances[1]?.state?.machine, M2);

  await reportCopy(store, 'mon.service', M2, 'failed', 0);
  const oneFailed = await api.get('mon.service');
  t.deepEqual(copies(oneFailed), [
    [M1, 'active', 11, 'launched'],
    [M2, 'failed', 0, 'loaded'],
  ]);
  t.is(oneFailed.currentState, 'loaded', 'placed, but not every copy runs');

  await store.delete(store.keys.globalState('mon.service', M1));
  const unreported = await api.get('mon.service');
  t.is(unreported.instances[0]?.state, undefined, 'a copy whose agent has not reported');
  t.is(unreported.instances[0]?.currentState, 'loaded');
  t.is(unreported.instances[1]?.state?.activeState, 'failed', 'the other copy is untouched');

  await store.delete(store.keys.placement(M1, 'mon.service'));
  await store.delete(store.keys.placement(M2, 'mon.service'));
  const pending = Unscheduled.fromPartial({ unit: 'mon.service', summary: '0/2 machines: 2 x' });
  await store.putRecord(codecs.unscheduled, store.keys.unscheduled('mon.service'), pending);
  const none = await api.get('mon.service');
  t.deepEqual(none.instances, [], 'the stopping copy on M2 is not placed: no instance');
  t.is(none.currentState, 'inactive');
  t.is(none.unscheduled?.summary, '0/2 machines: 2 x');
});

test('ListUnits pages cover every copy of a Global unit, even as the last unit of a page', async (t) => {
  const api = await startApi(t, server());
  const { store } = api;
  await putMachines(store);
  await putUnit(store, 'a.service');
  await putUnit(store, 'g.service', GLOBAL_FILE);
  await putUnit(store, 'g2.service');
  await putUnit(store, 'h.service');
  await place(store, 'a.service', M1);
  await report(store, 'a.service', M1, 'active');
  for (const m of [M1, M2]) await place(store, 'g.service', m);
  await reportCopy(store, 'g.service', M1, 'active', 11);
  await reportCopy(store, 'g.service', M2, 'activating', 22);
  await place(store, 'g2.service', M2);
  await report(store, 'g2.service', M2, 'failed');
  await place(store, 'h.service', M2);
  await report(store, 'h.service', M2, 'active');

  const expected = [
    ['a.service', 'launched', M1, []],
    [
      'g.service',
      'launched',
      '',
      [
        [M1, 'active', 11, 'launched'],
        [M2, 'activating', 22, 'launched'],
      ],
    ],
    ['g2.service', 'loaded', M2, []],
    ['h.service', 'launched', M2, []],
  ];
  const row = (u: UnitStatus) => [
    u.unit?.name,
    u.currentState,
    u.placement?.machine ?? '',
    copies(u),
  ];
  for (const pageSize of [1, 2, 3, 10]) {
    const pages = await listAll(api, { pageSize });
    t.true(
      pages.every((p) => p.length <= pageSize),
      `pages of ${pageSize}`,
    );
    t.deepEqual(pages.flat().map(row), expected, `pages of ${pageSize}`);
  }
  const [first] = await listAll(api, { pageSize: 2 });
  t.is(first?.[1]?.unit?.name, 'g.service', 'the Global unit ends the first page of two');

  const onM2 = await listAll(api, { machine: M2, pageSize: 1 });
  t.deepEqual(
    onM2.flat().map(row),
    [
      ['g.service', 'launched', '', [[M2, 'activating', 22, 'launched']]],
      ['g2.service', 'loaded', M2, []],
      ['h.service', 'launched', M2, []],
    ],
    "the machine filter shows that machine's copy",
  );
});

test('a state change of a Global copy is an event naming the unit and that machine', async (t) => {
  const api = await startApi(t, server());
  const { store } = api;
  await putUnit(store, 'mon.service', GLOBAL_FILE);
  const start = (await store.revision()) + 1n;
  await reportCopy(store, 'mon.service', M1, 'active', 11);
  await reportCopy(store, 'mon.service', M2, 'active', 22);
  await store.delete(store.keys.globalState('mon.service', M1));
  await putUnit(store, 'sentinel.service');

  const done = (es: readonly Event[]) => es.some((e) => e.name === 'sentinel.service');
  const all = await collectUntil(api.watch({ fromRevision: start }), done);
  t.deepEqual(
    all.filter((e) => e.kind === 'state').map((e) => [e.type, e.name, e.machine, e.state?.pid]),
    [
      ['put', 'mon.service', M1, 11],
      ['put', 'mon.service', M2, 22],
      ['delete', 'mon.service', M1, 11],
    ],
  );
  const onM2 = await collectUntil(api.watch({ fromRevision: start, machine: M2 }), (es) =>
    es.some((e) => e.kind === 'state'),
  );
  t.deepEqual(
    onM2.map((e) => [e.kind, e.name, e.machine]),
    [['state', 'mon.service', M2]],
  );
});

/** Events of `stream` until `done` holds for what arrived. */
function collectUntil(
  stream: ClientReadableStream<Event>,
  done: (events: readonly Event[]) => boolean,
): Promise<Event[]> {
  return new Promise((resolve, reject) => {
    const events: Event[] = [];
    const timer = setTimeout(
      () => reject(new Error(`timed out after ${events.length} events`)),
      CALL_TIMEOUT_MS,
    );
    stream.on('data', (e: Event) => {
      events.push(e);
      if (!done(events)) return;
      clearTimeout(timer);
      resolve(events);
    });
    stream.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * The mirror's states and endpoints, keyed by the machine that reports them
 * (`unit-states/<machine>/...`, `unit-endpoints/<machine>/...`), and the records an agent of
 * an earlier version wrote under the old keys (`states/<name>`, `states/<name>/<machine>`,
 * `endpoints/<service>/<machine>/...`), which count until that agent's lease takes them.
 */
import test, { type ExecutionContext } from 'ava';
import { Endpoint, Placement, UnitState } from '../../proto/flotilla/v1/records.js';
import { ClusterMirror, codecs, openStore, type Store } from '../../store/index.js';
import { etcdForFile, uniquePrefix } from '../../testkit/index.js';

const server = etcdForFile(test);

async function setUp(t: ExecutionContext) {
  const store = openStore({ endpoints: server().endpoint, prefix: uniquePrefix('mstates') });
  const mirror = new ClusterMirror(store);
  t.teardown(async () => {
    await mirror.close();
    store.close();
  });
  await mirror.ready();
  const settle = async (): Promise<void> => mirror.waitFor(await store.revision());
  return { store, mirror, settle };
}

const state = (name: string, machine: string, pid = 1): UnitState =>
  UnitState.fromPartial({ name, machine, activeState: 'active', subState: 'running', pid });

async function place(store: Store, machine: string, unit: string): Promise<void> {
  const p = Placement.fromPartial({ unit, machine, hash: 'h' });
  await store.putRecord(codecs.placement, store.keys.placement(machine, unit), p);
}

test('a state written under the old key by an earlier agent is still the unit state, until it goes', async (t) => {
  const { store, mirror, settle } = await setUp(t);
  await place(store, 'm1', 'web.service');
  await store.putRecord(
    codecs.state,
    store.keys.legacyState('web.service'),
    state('web.service', 'm1', 7),
  );
  await store.putRecord(
    codecs.state,
    store.keys.legacyGlobalState('mon.service', 'm2'),
    state('mon.service', 'm2', 8),
  );
  await settle();
  t.is(mirror.states.get('web.service')?.value.pid, 7, 'the old-form state is the unit state');
  t.is(mirror.copies.get('mon.service')?.get('m2')?.value.pid, 8, 'an old-form copy is a copy');

  // The agent restarts as this version: it reports under the new key, then the old one goes.
  await store.putRecord(
    codecs.state,
    store.keys.state('m1', 'web.service'),
    state('web.service', 'm1', 9),
  );
  await store.putRecord(
    codecs.state,
    store.keys.globalState('mon.service', 'm2'),
    state('mon.service', 'm2', 10),
  );
  await settle();
  await store.delete(store.keys.legacyState('web.service'));
  await store.delete(store.keys.legacyGlobalState('mon.service', 'm2'));
  await settle();
  t.is(mirror.states.get('web.service')?.value.pid, 9, 'the old key going leaves the new report');
  t.is(mirror.copies.get('mon.service')?.get('m2')?.value.pid, 10);
  t.is(mirror.copies.get('web.service'), undefined, 'a unit that is not Global has no copies');
  t.is(mirror.states.get('mon.service'), undefined, 'a Global unit has no single state');
});

test('while a unit moves, its state is the report of the machine it is placed on', async (t) => {
  const { store, mirror, settle } = await setUp(t);
  await place(store, 'm1', 'web.service');
  await store.putRecord(
    codecs.state,
    store.keys.state('m1', 'web.service'),
    state('web.service', 'm1', 1),
  );
  await settle();
  await store.delete(store.keys.placement('m1', 'web.service'));
  await place(store, 'm2', 'web.service');
  await settle();
  t.is(mirror.states.get('web.service')?.value.machine, 'm1', 'the only report, until m2 reports');
  await store.putRecord(
    codecs.state,
    store.keys.state('m2', 'web.service'),
    state('web.service', 'm2', 2),
  );
  // The old machine reports its stop after the new one started: still not the unit state.
  await store.putRecord(codecs.state, store.keys.state('m1', 'web.service'), {
    ...state('web.service', 'm1', 0),
    activeState: 'deactivating',
  });
  await settle();
  t.is(mirror.states.get('web.service')?.value.machine, 'm2');
  await store.delete(store.keys.state('m1', 'web.service'));
  await settle();
  t.is(mirror.states.get('web.service')?.value.pid, 2);
  await store.delete(store.keys.state('m2', 'web.service'));
  await settle();
  t.is(mirror.states.get('web.service'), undefined);
});

test("a service's endpoints are listed together, from every machine and from both key forms", async (t) => {
  const { store, mirror, settle } = await setUp(t);
  const ep = (machine: string, unit: string, port: number): Endpoint =>
    Endpoint.fromPartial({
      service: 'api',
      unit,
      machine,
      address: '10.0.0.1',
      port,
      portName: 'http',
    });
  await store.putRecord(
    codecs.endpoint,
    store.keys.endpoint('api', 'm2', 'api@2.service', 'http'),
    ep('m2', 'api@2.service', 2),
  );
  await store.putRecord(
    codecs.endpoint,
    store.keys.legacyEndpoint('api', 'm1', 'api@1.service', 'http'),
    ep('m1', 'api@1.service', 1),
  );
  await store.putRecord(
    codecs.endpoint,
    store.keys.endpoint('other', 'm1', 'o.service', 'http'),
    ep('m1', 'o.service', 3),
  );
  await settle();
  t.deepEqual(
    [...(mirror.endpoints.get('api')?.keys() ?? [])],
    ['m1/api@1.service/http', 'm2/api@2.service/http'],
  );
  // The upgraded agent of m1 writes the new key, then deletes the old one.
  await store.putRecord(
    codecs.endpoint,
    store.keys.endpoint('api', 'm1', 'api@1.service', 'http'),
    ep('m1', 'api@1.service', 11),
  );
  await store.delete(store.keys.legacyEndpoint('api', 'm1', 'api@1.service', 'http'));
  await settle();
  t.is(mirror.endpoints.get('api')?.get('m1/api@1.service/http')?.value.port, 11);
  t.is(mirror.endpointsOfUnit.get('api@1.service')?.get('api/m1/http')?.value.port, 11);
});

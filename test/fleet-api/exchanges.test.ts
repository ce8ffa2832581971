/**
 * fleetctl v1.0.0's exchanges with fleet's API, verb by verb, replayed against a real
 * scheduler replica (`--fleet-api-socket`) and etcd with simulated agents: the requests it
 * sends, the answers it needs, and the state sequences its waits follow (a submit that never
 * reports `inactive` hangs it; a start whose state is 404 makes it panic).
 */
import { createHash } from 'node:crypto';
import test from 'ava';
import { codecs } from '../../store/index.js';
import { etcdForFile } from '../../testkit/index.js';
import { fleetCluster, pollUnit, type FleetClient, type FleetUnit } from './fleet-kit.js';

const server = etcdForFile(test);

/** hello.service as fleetctl reads it from a file in fleet's canonical form. */
const HELLO =
  '[Unit]\nDescription=Hello\n\n[Service]\nExecStart=/bin/sh -c "echo hi; sleep 1000"\n';
const HELLO_OPTIONS = [
  { section: 'Unit', name: 'Description', value: 'Hello' },
  { section: 'Service', name: 'ExecStart', value: '/bin/sh -c "echo hi; sleep 1000"' },
];
const sha1 = (text: string): string => createHash('sha1').update(text).digest('hex');

interface FleetState {
  name: string;
  hash?: string;
  machineID?: string;
  systemdLoadState?: string;
  systemdActiveState?: string;
  systemdSubState?: string;
}

test('list-machines: every machine with its id, primary IP and metadata', async (t) => {
  const c = await fleetCluster(t, server());
  const a = await c.fleet('GET', 'machines');
  t.is(a.status, 200);
  t.is(a.contentType, 'application/json');
  const ids = c.machines.map((m) => m.id).sort();
  const body = a.json as { machines: { id: string; primaryIP: string; metadata: object }[] };
  t.deepEqual(
    body.machines.map((m) => m.id),
    ids,
  );
  const first = c.machines.find((m) => m.id === ids[0]);
  t.deepEqual(body.machines[0], {
    id: ids[0],
    primaryIP: first?.addresses[0],
    metadata: first?.metadata,
  });
  t.false('nextPageToken' in body);
});

test('submit, load, start, list-units, stop, unload, destroy: the answers and states fleetctl waits on', async (t) => {
  const c = await fleetCluster(t, server());
  const { fleet } = c;
  // submit: GET (404 is "no such unit"), PUT with options (201), then wait for inactive.
  const missing = await fleet('GET', 'units/hello.service');
  t.is(missing.status, 404);
  t.deepEqual(missing.json, { error: { code: 404, message: 'unit does not exist' } });
  const created = await fleet('PUT', 'units/hello.service', {
    body: { name: 'hello.service', options: HELLO_OPTIONS },
  });
  t.is(created.status, 201, created.text);
  const first = await fleet('GET', 'units/hello.service');
  t.deepEqual(first.json, {
    name: 'hello.service',
    options: HELLO_OPTIONS,
    desiredState: 'inactive',
    currentState: 'inactive',
  });
  // The stored file is fleet's serialization: the options read back verbatim, and cat prints
  // the canonical file byte for byte.
  const stored = await c.store.getRecord(codecs.unit, c.store.keys.unit('hello.service'));
  t.is(stored?.value.file, HELLO);

  // list-unit-files: GET /units; fleetctl hashes the options itself.
  const files = await fleet('GET', 'units');
  t.is(files.status, 200);
  t.deepEqual((files.json as { units: FleetUnit[] }).units, [first.json as FleetUnit]);

  // load: PUT desiredState (204), then wait for loaded.
  const load = await fleet('PUT', 'units/hello.service', {
    body: { name: 'hello.service', desiredState: 'loaded' },
  });
  t.is(load.status, 204, load.text);
  t.is(load.text, '');
  const loaded = await pollUnit(fleet, 'hello.service', (u) => u.currentState === 'loaded');
  t.deepEqual(loaded.seen.slice(-1), ['loaded']);
  t.true(
    loaded.seen.every((s) => s === 'inactive' || s === 'loaded'),
    loaded.seen.join(),
  );
  const machine = loaded.unit.machineID ?? '';
  t.true(c.machines.some((m) => m.id === machine));
  const loadedState = (await fleet('GET', 'state/hello.service')).json as FleetState;
  t.deepEqual(loadedState, {
    name: 'hello.service',
    hash: sha1(HELLO),
    machineID: machine,
    systemdLoadState: 'loaded',
    systemdActiveState: 'inactive',
    systemdSubState: 'dead',
  });

  // start: PUT launched, wait for launched, then GET state/{name} must say active/loaded.
  const start = await fleet('PUT', 'units/hello.service', {
    body: { name: 'hello.service', desiredState: 'launched' },
  });
  t.is(start.status, 204);
  const launched = await pollUnit(fleet, 'hello.service', (u) => u.currentState === 'launched');
  t.true(
    launched.seen.every((s) => s === 'loaded' || s === 'launched'),
    launched.seen.join(),
  );
  const running = await fleet('GET', 'state/hello.service');
  t.is(running.status, 200);
  t.like(running.json, { systemdLoadState: 'loaded', systemdActiveState: 'active' });

  // list-units: GET /state, one row, hash of 40 hex digits.
  const states = (await fleet('GET', 'state')).json as { states: FleetState[] };
  t.is(states.states.length, 1);
  t.like(states.states[0], { name: 'hello.service', machineID: machine, hash: sha1(HELLO) });

  // stop: PUT loaded, wait for loaded; the state says inactive/dead.
  t.is(
    (await fleet('PUT', 'units/hello.service', { body: { desiredState: 'loaded' } })).status,
    204,
  );
  await pollUnit(fleet, 'hello.service', (u) => u.currentState === 'loaded');
  await pollState(fleet, 'hello.service', (s) => s?.systemdActiveState === 'inactive');

  // unload: PUT inactive, wait for inactive; the unit has no state row any more.
  t.is(
    (await fleet('PUT', 'units/hello.service', { body: { desiredState: 'inactive' } })).status,
    204,
  );
  const unloaded = await pollUnit(fleet, 'hello.service', (u) => u.currentState === 'inactive');
  t.is(unloaded.unit.machineID, undefined);
  await pollState(fleet, 'hello.service', (s) => s === undefined);
  t.deepEqual((await fleet('GET', 'state')).json, { states: [] });

  // destroy: DELETE (204), then GET is 404; a second DELETE is 404, which destroy ignores.
  const destroyed = await fleet('DELETE', 'units/hello.service');
  t.is(destroyed.status, 204);
  t.is((await fleet('GET', 'units/hello.service')).status, 404);
  const again = await fleet('DELETE', 'units/hello.service');
  t.is(again.status, 404);
  t.deepEqual(again.json, { error: { code: 404, message: 'unit does not exist' } });
});

test('start --no-block: a unit created and started at once reports inactive, then launched, never an empty state', async (t) => {
  const c = await fleetCluster(t, server());
  const { fleet } = c;
  t.is(
    (
      await fleet('PUT', 'units/nb.service', {
        body: { name: 'nb.service', options: HELLO_OPTIONS },
      })
    ).status,
    201,
  );
  const created = await pollUnit(fleet, 'nb.service', (u) => u.currentState === 'inactive');
  t.deepEqual(created.seen, ['inactive']);
  t.is(
    (await fleet('PUT', 'units/nb.service', { body: { desiredState: 'launched' } })).status,
    204,
  );
  const after = await pollUnit(fleet, 'nb.service', (u) => u.currentState === 'launched');
  t.false(after.seen.includes(''));
  t.is((await fleet('GET', 'state/nb.service')).status, 200);
});

test('instances travel percent-encoded and Conflicts= keeps them on different machines', async (t) => {
  const c = await fleetCluster(t, server());
  const { fleet } = c;
  const template = [
    { section: 'Unit', name: 'Description', value: 'Hello %i' },
    { section: 'Service', name: 'ExecStart', value: '/bin/sleep 1000' },
    { section: 'X-Fleet', name: 'Conflicts', value: 'hello@*.service' },
  ];
  const put = await fleet('PUT', 'units/hello%40.service', {
    body: { name: 'hello@.service', options: template },
  });
  t.is(put.status, 201, put.text);
  const tpl = await fleet('GET', 'units/hello%40.service');
  t.like(tpl.json, { name: 'hello@.service', desiredState: 'inactive', currentState: 'inactive' });
  // fleetctl start hello@{1..3}: each instance created from the template's options, then started.
  for (const i of [1, 2, 3]) {
    const name = `hello@${i}.service`;
    const enc = `hello%40${i}.service`;
    t.is((await fleet('PUT', `units/${enc}`, { body: { name, options: template } })).status, 201);
    t.is(
      (await fleet('PUT', `units/${enc}`, { body: { name, desiredState: 'launched' } })).status,
      204,
    );
  }
  const machines = new Set<string>();
  for (const i of [1, 2, 3]) {
    const { unit } = await pollUnit(
      fleet,
      `hello@${i}.service`,
      (u) => u.currentState === 'launched',
    );
    machines.add(unit.machineID ?? '');
  }
  t.is(machines.size, 3, [...machines].join());
  // A template is never activated.
  const activate = await fleet('PUT', 'units/hello%40.service', {
    body: { desiredState: 'launched' },
  });
  t.is(activate.status, 400);
  t.regex(
    (activate.json as { error: { message: string } }).error.message,
    /cannot activate template/,
  );
});

test('a Global unit has no currentState or machineID, and one state row per machine', async (t) => {
  const c = await fleetCluster(t, server());
  const { fleet } = c;
  const options = [
    { section: 'Service', name: 'ExecStart', value: '/bin/sleep 1000' },
    { section: 'X-Fleet', name: 'Global', value: 'true' },
  ];
  t.is(
    (
      await fleet('PUT', 'units/g.service', {
        body: { name: 'g.service', options, desiredState: 'launched' },
      })
    ).status,
    201,
  );
  const unit = (await fleet('GET', 'units/g.service')).json as FleetUnit;
  t.deepEqual(unit, { name: 'g.service', options, desiredState: 'launched' });
  const rows = await pollStates(fleet, (s) => s.length === c.machines.length);
  t.deepEqual(
    rows.map((r) => r.machineID),
    c.machines.map((m) => m.id).sort(),
  );
  t.true(rows.every((r) => r.name === 'g.service' && r.systemdActiveState === 'active'));
});

/** GET state/{name} until `done` holds for its row (undefined: 404). */
async function pollState(
  fleet: FleetClient,
  name: string,
  done: (s: FleetState | undefined) => boolean,
): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const a = await fleet('GET', `state/${encodeURIComponent(name)}`);
    if (a.status !== 200 && a.status !== 404) throw new Error(a.text);
    if (done(a.status === 404 ? undefined : (a.json as FleetState))) return;
    if (Date.now() > deadline) throw new Error(`state of ${name}: ${a.status} ${a.text}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** GET /state until `done` holds for its rows. */
async function pollStates(
  fleet: FleetClient,
  done: (s: FleetState[]) => boolean,
): Promise<FleetState[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const a = await fleet('GET', 'state');
    const rows = (a.json as { states: FleetState[] }).states;
    if (done(rows)) return rows;
    if (Date.now() > deadline) throw new Error(`states: ${a.text}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

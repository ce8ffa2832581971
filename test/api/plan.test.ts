import { readFileSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import test from 'ava';
import { Placement } from '../../proto/flotilla/v1/records.js';
import { codecs, type Store } from '../../store/index.js';
import { etcdForFile, makeMachine, makeUnit, unitText, EXAMPLES } from '../../testkit/index.js';
import { failure, fingerprint, startApi } from './api-kit.js';

const WEB = readFileSync(`${EXAMPLES}web@.service`, 'utf8');

const server = etcdForFile(test);

async function twoMachines(store: Store): Promise<void> {
  for (const [id, role] of [
    ['m1', 'db'],
    ['m2', 'web'],
  ] as const) {
    const m = makeMachine({ id, metadata: { role } });
    await store.putRecord(codecs.machine, store.keys.machine(id), m);
  }
}

test('Plan says where units would go, or why not, and writes nothing', async (t) => {
  const api = await startApi(t, server());
  await twoMachines(api.store);
  await api.submit({ files: [{ name: 'web@.service', contents: WEB }] });
  const before = await fingerprint(api.store);

  const res = await api.plan({
    files: [
      { name: 'db.service', contents: unitText({ xfleet: { MachineMetadata: 'role=db' } }) },
      { name: 'mars.service', contents: unitText({ xfleet: { MachineMetadata: 'region=mars' } }) },
    ],
    names: ['web@1.service'],
  });
  t.is(res.machines, 2);
  const byName = new Map(res.units.map((u) => [u.name, u]));
  t.deepEqual([...byName.keys()], ['db.service', 'mars.service', 'web@1.service']);
  t.is(byName.get('db.service')?.machine, 'm1');
  t.is(byName.get('db.service')?.unscheduled, undefined);
  t.regex(byName.get('web@1.service')?.machine ?? '', /^m[12]$/);
  const mars = byName.get('mars.service');
  t.is(mars?.machine, '');
  t.is(mars?.unscheduled?.machines, 2);
  t.true(
    mars?.unscheduled?.reasons.some((r) => r.reason.includes('region=mars') && r.machines === 2),
    mars?.unscheduled?.summary,
  );
  t.regex(mars?.unscheduled?.summary ?? '', /^0\/2 machines/);
  t.deepEqual(await fingerprint(api.store), before);
});

test('Plan shows which placed units a Replaces= unit would displace', async (t) => {
  const api = await startApi(t, server());
  await twoMachines(api.store);
  await api.submit({
    files: [{ name: 'old.service', contents: unitText() }],
    desiredState: 'launched',
  });
  await api.store.putRecord(
    codecs.placement,
    api.store.keys.placement('m2', 'old.service'),
    Placement.fromPartial({ unit: 'old.service', machine: 'm2' }),
  );
  const before = await fingerprint(api.store);
  const contents = unitText({ xfleet: { MachineMetadata: 'role=web', Replaces: 'old.service' } });
  const res = await api.plan({ files: [{ name: 'new.service', contents }] });
  t.deepEqual(
    res.units.map((u) => [u.name, u.machine, u.displaces]),
    [['new.service', 'm2', ['old.service']]],
  );
  t.deepEqual(await fingerprint(api.store), before);
});

test('Plan and ListMachines leave a stored unit whose file no longer parses alone', async (t) => {
  const api = await startApi(t, server());
  await twoMachines(api.store);
  const bad = makeUnit({ name: 'bad.service', file: '[Service]\nMemoryMax=lots\n' });
  await api.store.putRecord(codecs.unit, api.store.keys.unit(bad.name), bad);
  await api.store.putRecord(
    codecs.placement,
    api.store.keys.placement('m1', bad.name),
    Placement.fromPartial({ unit: bad.name, machine: 'm1' }),
  );
  const before = await fingerprint(api.store);
  const m1 = (await api.listMachines()).machines.find((m) => m.machine?.id === 'm1');
  t.is(m1?.units, 1);
  t.is(m1?.reserved?.memoryBytes, 0n);
  const contents = unitText({ xfleet: { MachineMetadata: 'role=db' } });
  const res = await api.plan({ files: [{ name: 'db.service', contents }] });
  t.deepEqual(
    res.units.map((u) => [u.name, u.machine]),
    [['db.service', 'm1']],
  );
  t.deepEqual(await fingerprint(api.store), before);
});

test('Plan refuses unknown names, templates and bad files', async (t) => {
  const api = await startApi(t, server());
  await twoMachines(api.store);
  await api.submit({ files: [{ name: 'web@.service', contents: WEB }] });
  const unknown = await failure(api.plan({ names: ['ghost.service', 'api@1.service'] }));
  t.is(unknown.code, status.NOT_FOUND);
  t.regex(unknown.details, /ghost\.service, api@1\.service/);
  t.is((await failure(api.plan({ names: ['web@.service'] }))).code, status.FAILED_PRECONDITION);
  const bad = await failure(
    api.plan({ files: [{ name: 'b.service', contents: '[Service]\nMemoryMax=lots\n' }] }),
  );
  t.is(bad.code, status.INVALID_ARGUMENT);
  t.regex(bad.details, /^b\.service:2: /);
  t.is((await failure(api.plan({}))).code, status.INVALID_ARGUMENT);
});

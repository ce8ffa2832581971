import test, { type ExecutionContext } from 'ava';
import { Placement } from '../../proto/flotilla/v1/records.js';
import { ClusterMirror, codecs, openStore, type Store } from '../../store/index.js';
import { etcdForFile, makeMachine, makeUnit, uniquePrefix } from '../../testkit/index.js';

const server = etcdForFile(test);

function setUp(t: ExecutionContext, historySize?: number) {
  const store = openStore({ endpoints: server().endpoint, prefix: uniquePrefix('mirror') });
  const mirror = new ClusterMirror(store, historySize === undefined ? {} : { historySize });
  t.teardown(async () => {
    await mirror.close();
    store.close();
  });
  return { store, mirror };
}

async function place(store: Store, machine: string, unit: string): Promise<bigint> {
  return store.putRecord(
    codecs.placement,
    store.keys.placement(machine, unit),
    Placement.fromPartial({ unit, machine, hash: 'h' }),
  );
}

test('indexes answer by name, by template, by machine in name order, and follow deletes', async (t) => {
  const { store, mirror } = setUp(t);
  for (const name of ['web@2.service', 'web@10.service', 'web@1.service', 'db.service']) {
    await store.putRecord(codecs.unit, store.keys.unit(name), makeUnit({ name }));
  }
  await store.putRecord(codecs.machine, store.keys.machine('m1'), makeMachine({ id: 'm1' }));
  await place(store, 'm1', 'web@2.service');
  await place(store, 'm1', 'db.service');
  await mirror.ready();
  await mirror.waitFor(await store.revision());

  t.is(mirror.units.get('db.service')?.value.name, 'db.service');
  t.deepEqual(
    [...mirror.units.entries('web@')].map(([n]) => n),
    ['web@1.service', 'web@10.service', 'web@2.service'],
    'name order, from any name on',
  );
  t.deepEqual([...(mirror.instances.get('web@.service') ?? [])].sort(), [
    'web@1.service',
    'web@10.service',
    'web@2.service',
  ]);
  t.deepEqual([...(mirror.placementsOn.get('m1')?.keys() ?? [])], ['db.service', 'web@2.service']);
  t.is(mirror.placements.get('web@2.service')?.get('m1')?.value.unit, 'web@2.service');

  t.true(await store.delete(store.keys.placement('m1', 'web@2.service')));
  await store.delete(store.keys.unit('web@2.service'));
  await mirror.waitFor(await store.revision());
  t.is(mirror.placements.get('web@2.service'), undefined);
  t.deepEqual([...(mirror.placementsOn.get('m1')?.keys() ?? [])], ['db.service']);
  t.false(mirror.instances.get('web@.service')?.has('web@2.service') ?? true);
});

test('a corrupt record is reported and left out; the rest of the cluster is still mirrored', async (t) => {
  const { store, mirror } = setUp(t);
  const problems: string[] = [];
  mirror.onError((err) => problems.push(err.code));
  await store.put(store.keys.unit('bad.service'), '{not json');
  await store.putRecord(
    codecs.unit,
    store.keys.unit('ok.service'),
    makeUnit({ name: 'ok.service' }),
  );
  await mirror.ready();
  await mirror.waitFor(await store.revision());
  t.is(mirror.units.get('bad.service'), undefined);
  t.truthy(mirror.units.get('ok.service'));
  t.true(problems.includes('corrupt'));
});

test('waitFor reaches a revision made by writes outside the prefix, without changes inside it', async (t) => {
  const { mirror } = setUp(t);
  await mirror.ready();
  const other = openStore({ endpoints: server().endpoint, prefix: uniquePrefix('elsewhere') });
  t.teardown(() => other.close());
  let rev = 0n;
  for (let i = 0; i < 5; i++) rev = await other.put(other.keys.unit(`x${i}.service`), '{}');
  await mirror.waitFor(rev, 10_000);
  t.true(mirror.revision >= rev);
});

test('changesSince replays every change from a revision while the history holds it', async (t) => {
  const { store, mirror } = setUp(t, 4);
  await mirror.ready();
  const revs: bigint[] = [];
  for (let i = 1; i <= 8; i++) {
    revs.push(
      await store.putRecord(
        codecs.unit,
        store.keys.unit(`u${i}.service`),
        makeUnit({ name: `u${i}.service` }),
      ),
    );
  }
  await mirror.waitFor(revs[7] ?? 0n);
  const recent = mirror.changesSince(revs[6] ?? 0n);
  t.deepEqual(
    recent?.map((c) => c.parsed?.name),
    ['u7.service', 'u8.service'],
  );
  t.is(mirror.changesSince(revs[0] ?? 0n), undefined, 'older than the history keeps');
});

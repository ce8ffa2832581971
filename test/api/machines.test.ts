import { status } from '@grpc/grpc-js';
import test from 'ava';
import { Placement } from '../../proto/flotilla/v1/records.js';
import { codecs, type Store } from '../../store/index.js';
import { etcdForFile, makeMachine, unitText } from '../../testkit/index.js';
import { failure, fingerprint, startApi } from './api-kit.js';

const server = etcdForFile(test);

const MIB = 1024n * 1024n;

async function addMachine(store: Store, id: string, metadata: Record<string, string> = {}) {
  await store.putRecord(codecs.machine, store.keys.machine(id), makeMachine({ id, metadata }));
}

async function place(store: Store, unit: string, machine: string): Promise<void> {
  await store.putRecord(
    codecs.placement,
    store.keys.placement(machine, unit),
    Placement.fromPartial({ unit, machine }),
  );
}

test('ListMachines reports each machine with its units and what they reserve', async (t) => {
  const api = await startApi(t, server());
  await addMachine(api.store, 'alpha0001', { role: 'web' });
  await addMachine(api.store, 'beta0002');
  await api.submit({
    files: [
      {
        name: 'big.service',
        contents: unitText({ service: { MemoryMax: '512M', CPUQuota: '50%' } }),
      },
      { name: 'small.service', contents: unitText({ service: { MemoryMax: '64M' } }) },
      { name: 'free.service', contents: unitText() },
    ],
  });
  await place(api.store, 'big.service', 'alpha0001');
  await place(api.store, 'small.service', 'alpha0001');
  await place(api.store, 'free.service', 'beta0002');

  const res = await api.listMachines();
  t.deepEqual(
    res.machines.map((m) => m.machine?.id),
    ['alpha0001', 'beta0002'],
  );
  const [alpha, beta] = res.machines;
  t.is(alpha?.units, 2);
  t.is(alpha?.reserved?.memoryBytes, 576n * MIB);
  t.is(alpha?.reserved?.cpuMillicores, 500n);
  t.deepEqual(alpha?.metadata, { role: 'web' });
  t.is(alpha?.drained, false);
  t.is(beta?.units, 1);
  t.is(beta?.reserved?.memoryBytes, 0n);
});

test('metadata set through the API merges over the agent own and can be removed', async (t) => {
  const api = await startApi(t, server());
  await addMachine(api.store, 'alpha0001', { role: 'web', region: 'eu' });
  const set = await api.setMetadata({
    machine: 'alpha',
    set: { region: 'us', disk: 'ssd' },
  });
  t.deepEqual(set.metadata, { role: 'web', region: 'us', disk: 'ssd' });
  const stored = await api.store.getRecord(
    codecs['machine-metadata'],
    api.store.keys.machineMetadata('alpha0001'),
  );
  t.deepEqual(stored?.value.metadata, { region: 'us', disk: 'ssd' });

  const removed = await api.setMetadata({ machine: 'alpha0001', remove: ['region'] });
  t.deepEqual(removed.metadata, { role: 'web', region: 'eu', disk: 'ssd' });
  const listed = await api.listMachines();
  t.deepEqual(listed.machines[0]?.metadata, { role: 'web', region: 'eu', disk: 'ssd' });
});

test('metadata for unknown machines, ambiguous prefixes or bad keys changes nothing', async (t) => {
  const api = await startApi(t, server());
  await addMachine(api.store, 'alpha0001');
  await addMachine(api.store, 'alpha0002');
  const before = await fingerprint(api.store);
  const unknown = await failure(api.setMetadata({ machine: 'gamma', set: { a: 'b' } }));
  t.is(unknown.code, status.NOT_FOUND);
  t.regex(unknown.details, /gamma/);
  const ambiguous = await failure(api.setMetadata({ machine: 'alpha', set: { a: 'b' } }));
  t.is(ambiguous.code, status.INVALID_ARGUMENT);
  t.regex(ambiguous.details, /ambiguous/);
  const badKey = await failure(api.setMetadata({ machine: 'alpha0001', set: { 'a b': 'c' } }));
  t.is(badKey.code, status.INVALID_ARGUMENT);
  const both = await failure(
    api.setMetadata({ machine: 'alpha0001', set: { a: 'b' }, remove: ['a'] }),
  );
  t.is(both.code, status.INVALID_ARGUMENT);
  t.is((await failure(api.drain('nope', true))).code, status.NOT_FOUND);
  t.deepEqual(await fingerprint(api.store), before);
});

test('drain and undrain set the flag in machine-metadata and keep API metadata', async (t) => {
  const api = await startApi(t, server());
  await addMachine(api.store, 'beta0002');
  await api.setMetadata({ machine: 'beta0002', set: { zone: 'a' } });
  const drained = await api.drain('beta', true);
  t.true(drained.drained);
  const key = api.store.keys.machineMetadata('beta0002');
  const rec = await api.store.getRecord(codecs['machine-metadata'], key);
  t.is(rec?.value.drained, true);
  t.deepEqual(rec?.value.metadata, { zone: 'a' });
  t.true((await api.listMachines()).machines[0]?.drained ?? false);

  const again = await api.drain('beta0002', true); // no-op
  t.true(again.drained);
  t.is((await api.store.getRecord(codecs['machine-metadata'], key))?.modRevision, rec?.modRevision);

  const undrained = await api.drain('beta0002', false);
  t.false(undrained.drained);
  t.is((await api.store.getRecord(codecs['machine-metadata'], key))?.value.drained, false);
});

test('ListMachines pages through the machines in id order, each once', async (t) => {
  const api = await startApi(t, server());
  const ids = Array.from({ length: 7 }, (_, i) => `page${i}`);
  for (const id of ids) {
    await api.store.putRecord(codecs.machine, api.store.keys.machine(id), makeMachine({ id }));
  }
  const seen: string[] = [];
  let pageToken = '';
  let pages = 0;
  do {
    const res = await api.listMachines({ pageSize: 3, pageToken });
    t.true(res.machines.length <= 3);
    seen.push(...res.machines.map((m) => m.machine?.id ?? '?'));
    pageToken = res.nextPageToken;
    pages += 1;
  } while (pageToken !== '' && pages < 10);
  t.deepEqual(seen, ids);
  t.is(pages, 3);
  const bad = await failure(api.listMachines({ pageToken: 'not-a-token!' }));
  t.is(bad.code, status.INVALID_ARGUMENT);
});

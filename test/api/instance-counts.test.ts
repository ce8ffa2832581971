import { readFileSync } from 'node:fs';
import test from 'ava';
import { codecs, openStore, type Store } from '../../store/index.js';
import { etcdForFile, EXAMPLES, uniquePrefix } from '../../testkit/index.js';
import { listAll, recordNames, startApi, storedUnit, unitNames, type Api } from './api-kit.js';

const WEB = readFileSync(`${EXAMPLES}web@.service`, 'utf8');

const server = etcdForFile(test);

/** No machines here: every instance waits, which admission refuses unless allowed. */
const PENDING = { allowPending: true };

/** The count record's numbers, as `1-3,5` (empty when there is no record). */
async function counted(store: Store): Promise<string> {
  const rec = await store.getRecord(
    codecs['instance-count'],
    store.keys.instanceCount('web@.service'),
  );
  return (rec?.value.ranges ?? [])
    .map((r) => (r.first === r.last ? `${r.first}` : `${r.first}-${r.last}`))
    .join(',');
}

async function withWeb(t: Parameters<typeof startApi>[0]): Promise<Api> {
  const api = await startApi(t, server());
  await api.submit({ files: [{ name: 'web@.service', contents: WEB }] });
  return api;
}

const web = (n: number): string => `web@${n}.service`;

test('a scale writes one instance-counts record and no instance records; list-units, status and cat show every instance', async (t) => {
  const api = await withWeb(t);
  const up = await api.scale('web', 5, PENDING);
  t.deepEqual(up.started, [1, 2, 3, 4, 5].map(web));
  t.deepEqual(await recordNames(api.store), ['web@.service']);
  t.is(await counted(api.store), '1-5');
  const listed = (await listAll(api, { nameGlob: 'web@*' })).flat();
  t.deepEqual(
    listed.map((u) => `${u.unit?.name} ${u.unit?.desiredState}`),
    ['web@.service inactive', ...[1, 2, 3, 4, 5].map((n) => `${web(n)} launched`)],
  );
  const template = await api.get('web@.service');
  const three = await api.get(web(3));
  t.is(three.unit?.file, WEB, 'cat shows the template file');
  t.is(three.unit?.hash, template.unit?.hash);
  t.is(three.unit?.desiredState, 'launched');
});

test('scale down removes the highest numbers; a scale up after destroying web@3 reuses 3', async (t) => {
  const api = await withWeb(t);
  await api.scale('web', 5, PENDING);
  const down = await api.scale('web', 4);
  t.deepEqual(down.destroyed, [web(5)]);
  t.is(await counted(api.store), '1-4');
  const gone = await api.destroy([web(3)]);
  t.deepEqual(gone.destroyed, [web(3)]);
  t.is(await counted(api.store), '1-2,4');
  t.deepEqual(await recordNames(api.store), ['web@.service'], 'a destroy writes no record');
  t.is((await api.list({ nameGlob: 'web@3*' })).units.length, 0);
  const up = await api.scale('web', 4, PENDING);
  t.deepEqual(up.started, [web(3)], 'the lowest free number');
  t.is(await counted(api.store), '1-4');
});

test('stop, start, set-desired and destroy of one counted instance materialise exactly it', async (t) => {
  const api = await withWeb(t);
  await api.scale('web', 6, PENDING);
  const stopped = await api.setDesired([web(2)], 'loaded');
  t.deepEqual(stopped.changed, [web(2)]);
  t.deepEqual(await recordNames(api.store), ['web@.service', web(2)]);
  t.is((await storedUnit(api.store, web(2)))?.desiredState, 'loaded');
  t.is(await counted(api.store), '1,3-6');
  t.is((await api.get(web(4))).unit?.desiredState, 'launched', 'the others are untouched');

  // Two instances in one request: one put of the count, at the request's revision.
  const both = await api.setDesired([web(3), web(5)], 'inactive');
  const count = await api.store.getRecord(
    codecs['instance-count'],
    api.store.keys.instanceCount('web@.service'),
  );
  t.is(count?.modRevision, both.revision);
  t.is(await counted(api.store), '1,4,6');
  t.deepEqual(await recordNames(api.store), ['web@.service', web(2), web(3), web(5)]);

  const started = await api.setDesired([web(3)], 'launched', true);
  t.deepEqual(started.changed, [web(3)]);
  t.is((await storedUnit(api.store, web(3)))?.desiredState, 'launched');
  const unchanged = await api.setDesired([web(4)], 'launched', true);
  t.deepEqual(unchanged.unchanged, [web(4)], 'already launched: nothing written');
  t.is(await counted(api.store), '1,4,6');

  await api.destroy([web(6), web(2)]);
  t.is(await counted(api.store), '1,4');
  t.deepEqual(await recordNames(api.store), ['web@.service', web(3), web(5)]);
  t.deepEqual(await unitNames(api.store), ['web@.service', web(1), web(3), web(4), web(5)]);
});

test('flotctl start web@7 by hand beside a count works, and the next scale counts it', async (t) => {
  const api = await withWeb(t);
  await api.scale('web', 3, PENDING);
  const started = await api.setDesired([web(7)], 'launched', true);
  t.deepEqual(started.changed, [web(7)]);
  t.deepEqual(await recordNames(api.store), ['web@.service', web(7)]);
  const up = await api.scale('web', 5, PENDING);
  t.deepEqual(up.started, [web(4)], '7 counts among the five');
  t.deepEqual(up.instances, [1, 2, 3, 4, 7].map(web));
  t.is(await counted(api.store), '1-4,7', 'its record, the template file launched, is folded in');
  t.deepEqual(await recordNames(api.store), ['web@.service']);
  const down = await api.scale('web', 3);
  t.deepEqual(down.destroyed, [web(4), web(7)], 'the highest go');
  t.is(await counted(api.store), '1-3');
  const none = await api.scale('web', 0);
  t.is(none.instances.length, 0);
  t.is(await counted(api.store), '', 'the count record goes with its last number');
});

test('a cluster written with one record per instance keeps its units under the new code and scales over them', async (t) => {
  const prefix = uniquePrefix(t.title);
  const store = openStore({ endpoints: server().endpoint, prefix });
  t.teardown(() => store.close());
  // What an earlier scale wrote: the template, and units/web@N records carrying its file.
  const first = await startApi(t, server(), { store });
  await first.submit({ files: [{ name: 'web@.service', contents: WEB }] });
  const template = await store.getRecord(codecs.unit, store.keys.unit('web@.service'));
  if (template === undefined) return t.fail('submitted');
  for (const n of [1, 2, 3, 4]) {
    await store.putRecord(codecs.unit, store.keys.unit(web(n)), {
      ...template.value,
      name: web(n),
      desiredState: 'launched',
    });
  }
  // A scheduler (its API) started afresh over those records.
  const api = await startApi(t, server(), { store });
  const listed = (await listAll(api, { nameGlob: 'web@*' })).flat();
  t.deepEqual(
    listed.map((u) => u.unit?.name),
    ['web@.service', ...[1, 2, 3, 4].map(web)],
  );
  // One stopped by hand: kept, launched by the scale, but not folded (it was not launched).
  await api.setDesired([web(2)], 'loaded');
  const up = await api.scale('web', 6, PENDING);
  t.deepEqual(up.started, [web(2), web(5), web(6)], 'the old records count');
  t.is(await counted(store), '1,3-6', 'launched records equal to the template are folded in');
  t.deepEqual(await recordNames(store), ['web@.service', web(2)]);
  t.deepEqual(await unitNames(store), ['web@.service', ...[1, 2, 3, 4, 5, 6].map(web)]);
  const down = await api.scale('web', 2);
  t.deepEqual(down.destroyed, [3, 4, 5, 6].map(web));
  t.is(await counted(store), '1-2', 'web@2, launched since, is folded in by this scale');
  t.deepEqual(await recordNames(store), ['web@.service']);
});

import test, { type ExecutionContext } from 'ava';
import type { InstanceCount } from '../../proto/flotilla/v1/counts.js';
import { subtractRanges } from '../../store/instance-counts.js';
import {
  addNumbers,
  atomicTxn,
  ClusterMirror,
  codecs,
  countedIn,
  openStore,
  removeNumbers,
  toRanges,
  type MirrorChange,
  type StoreError,
} from '../../store/index.js';
import { etcdForFile, makeUnit, uniquePrefix } from '../../testkit/index.js';

const server = etcdForFile(test);
const FILE = '[Service]\nExecStart=/bin/true\n';

function setUp(t: ExecutionContext) {
  const store = openStore({ endpoints: server().endpoint, prefix: uniquePrefix('counts') });
  const mirror = new ClusterMirror(store);
  const changes: MirrorChange[] = [];
  const errors: StoreError[] = [];
  mirror.on((e) => changes.push(...e.changes.filter((c) => c.kind === 'unit')));
  mirror.onError((err) => errors.push(err));
  t.teardown(async () => {
    await mirror.close();
    store.close();
  });
  return { store, mirror, changes, errors };
}

function count(ranges: [number, number][], hash = 'h1'): InstanceCount {
  return {
    template: 'web@.service',
    file: FILE,
    hash,
    desiredState: 'launched',
    ranges: ranges.map(([first, last]) => ({ first, last })),
  };
}

test('a count record shows as one unit per number, and a change files only the numbers it changed', async (t) => {
  const { store, mirror, changes } = setUp(t);
  const key = store.keys.instanceCount('web@.service');
  await store.putRecord(codecs['instance-count'], key, count([[1, 1000]]));
  await mirror.ready();
  await mirror.waitFor(await store.revision());
  t.is(mirror.instances.get('web@.service')?.size, 1000);
  const seven = mirror.units.get('web@7.service');
  t.deepEqual(seven?.value, {
    name: 'web@7.service',
    file: FILE,
    hash: 'h1',
    desiredState: 'launched',
  });
  t.is(countedIn(seven), 'web@.service');
  t.is(seven?.key, store.keys.unit('web@7.service'));

  changes.length = 0;
  const rev = await store.putRecord(
    codecs['instance-count'],
    key,
    count([
      [1, 6],
      [8, 1002],
    ]),
  );
  await mirror.waitFor(rev);
  t.is(mirror.units.get('web@7.service'), undefined);
  t.is(mirror.units.get('web@1001.service')?.modRevision, rev);
  t.true(
    mirror.units.get('web@8.service')?.modRevision === seven?.modRevision,
    'kept: same revision',
  );
  t.deepEqual(
    changes.map((c) => `${c.change.type} ${c.parsed?.name}`).sort(),
    ['delete web@7.service', 'put web@1001.service', 'put web@1002.service'],
    'three changes for three numbers, none for the 999 kept',
  );
});

test('a real record wins over a counted number, and taking it out of the count in the same revision is one change', async (t) => {
  const { store, mirror, changes } = setUp(t);
  const key = store.keys.instanceCount('web@.service');
  const first = await store.putRecord(codecs['instance-count'], key, count([[1, 3]]));
  await mirror.ready();
  await mirror.waitFor(first);
  const entry = mirror.units.get('web@2.service');
  if (entry === undefined) return t.fail('web@2 is counted');
  changes.length = 0;
  // What a stop of web@2 writes: its own record, and the count without it, in one revision.
  const res = await atomicTxn(store, (b) => {
    b.putIfAbsent(
      store.keys.unit('web@2.service'),
      codecs.unit.encode(makeUnit({ name: 'web@2.service', desiredState: 'loaded' })),
    );
    b.putIfModRevision(
      key,
      codecs['instance-count'].encode(
        count([
          [1, 1],
          [3, 3],
        ]),
      ),
      first,
    );
  });
  await mirror.waitFor(res.revision);
  t.is(mirror.units.get('web@2.service')?.value.desiredState, 'loaded');
  t.is(countedIn(mirror.units.get('web@2.service')), undefined);
  t.is(changes.length, 1, changes.map((c) => `${c.change.type} ${c.parsed?.name}`).join(', '));
  const [change] = changes;
  t.is(change?.change.type, 'put');
  t.is(
    change?.change.prev?.kind === 'unit' ? change.change.prev.value.desiredState : '',
    'launched',
  );

  // A real record of a number the count still holds hides it; deleting it shows the count's.
  const real = await store.putRecord(
    codecs.unit,
    store.keys.unit('web@3.service'),
    makeUnit({ name: 'web@3.service', desiredState: 'inactive' }),
  );
  await mirror.waitFor(real);
  t.is(mirror.units.get('web@3.service')?.value.desiredState, 'inactive');
  await store.delete(store.keys.unit('web@3.service'));
  await mirror.waitFor(await store.revision());
  t.is(mirror.units.get('web@3.service')?.value.desiredState, 'launched');
  t.is(mirror.instances.get('web@.service')?.size, 3);
});

test('a corrupt count record is reported and skipped; the mirror goes on', async (t) => {
  const { store, mirror, errors } = setUp(t);
  const key = store.keys.instanceCount('web@.service');
  await store.put(store.keys.instanceCount('api@.service'), '{not json');
  await store.putRecord(codecs['instance-count'], store.keys.instanceCount('db@.service'), {
    ...count([
      [5, 9],
      [1, 2],
    ]),
    template: 'db@.service',
  });
  await store.putRecord(codecs['instance-count'], key, count([[1, 2_000_000_000]]));
  await store.putRecord(
    codecs.unit,
    store.keys.unit('ok.service'),
    makeUnit({ name: 'ok.service' }),
  );
  await mirror.ready();
  await mirror.waitFor(await store.revision());
  t.is(mirror.units.get('ok.service')?.value.name, 'ok.service');
  t.is(mirror.units.size, 1, 'no counted instance of a corrupt count');
  t.is(mirror.corrupt(10).count, 3);
  const messages = errors.map((e) => e.message).join('\n');
  t.regex(messages, /api@\.service.*not a InstanceCount/);
  t.regex(messages, /range 1\.\.2 is out of order/);
  t.regex(messages, /range 1\.\.2000000000 is out of order or outside 1\.\.1000000/);

  // Mended, it counts.
  const rev = await store.putRecord(codecs['instance-count'], key, count([[1, 4]]));
  await mirror.waitFor(rev);
  t.is(mirror.instances.get('web@.service')?.size, 4);
});

test('range arithmetic agrees with sets of numbers: subtract, add, remove', (t) => {
  let seed = 7;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const numbers = (): number[] => Array.from({ length: random(40) }, () => 1 + random(60));
  const expand = (ranges: readonly { first: number; last: number }[]): number[] =>
    ranges.flatMap((r) => Array.from({ length: r.last - r.first + 1 }, (_, i) => r.first + i));
  const sorted = (xs: Iterable<number>): number[] => [...new Set(xs)].sort((a, b) => a - b);
  for (let i = 0; i < 500; i++) {
    const a = numbers();
    const b = numbers();
    const ra = toRanges(a);
    t.deepEqual(expand(ra), sorted(a));
    t.deepEqual(
      expand(subtractRanges(ra, toRanges(b))),
      sorted(a).filter((n) => !b.includes(n)),
    );
    t.deepEqual(expand(addNumbers(ra, b)), sorted([...a, ...b]));
    t.deepEqual(
      expand(removeNumbers(ra, b)),
      sorted(a).filter((n) => !b.includes(n)),
    );
    // Merged: no two ranges touch.
    const merged = addNumbers(ra, b);
    t.true(merged.every((r, j) => j === 0 || r.first > (merged[j - 1]?.last ?? 0) + 1));
  }
});

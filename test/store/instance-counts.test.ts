import test, { type ExecutionContext } from 'ava';
import type { InstanceCount } from '../../proto/flotilla/v1/counts.js';
import { subtractRanges } from '../../store/instance-counts.js';
import {
  addNumbers,
  addRanges,
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
import { etcdForFile, makeUnit, TurnCounter, uniquePrefix } from '../../testkit/index.js';

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

test('a count of 30,000 is filed over many turns: readers that wait see all of it, and no later change overtakes it', async (t) => {
  const { store, mirror } = setUp(t);
  await mirror.ready();
  const turns = new TurnCounter();
  t.teardown(() => turns.stop());
  /** Per turn of the event loop: instances filed and the last change's revision. */
  const perTurn = new Map<number, number>();
  const order: { kind: string; revision: bigint }[] = [];
  let revisionWhileFiling: bigint | undefined;
  let scaledAt = -1n;
  mirror.on((e) => {
    for (const c of e.changes) order.push({ kind: c.kind, revision: c.change.revision });
    const units = e.changes.filter(
      (c) => c.kind === 'unit' && c.change.revision === scaledAt,
    ).length;
    perTurn.set(turns.turn, (perTurn.get(turns.turn) ?? 0) + units);
    revisionWhileFiling ??= units > 0 ? mirror.revision : undefined;
  });
  const key = store.keys.instanceCount('web@.service');
  const scaled = await store.putRecord(codecs['instance-count'], key, count([[1, 30_000]]));
  scaledAt = scaled;
  const after = await store.putRecord(
    codecs.unit,
    store.keys.unit('later.service'),
    makeUnit({ name: 'later.service' }),
  );
  await mirror.waitFor(scaled);
  t.is(mirror.instances.get('web@.service')?.size, 30_000, 'waitFor sees the whole count');
  t.true(mirror.revision >= scaled);
  await mirror.waitFor(after);
  turns.stop();

  t.true(
    revisionWhileFiling !== undefined && revisionWhileFiling < scaled,
    `while filing, the mirror says it is before the count (${revisionWhileFiling} < ${scaled})`,
  );
  const filed = [...perTurn.values()].filter((n) => n > 0);
  t.is(
    filed.reduce((a, b) => a + b, 0),
    30_000,
  );
  t.true(filed.length >= 5, `filed over ${filed.length} turns`);
  t.true(Math.max(...filed) < 20_000, `at most ${Math.max(...filed)} in one turn`);
  t.log(`instances filed per turn: most ${Math.max(...filed)}, over ${filed.length} turns`);
  const lastOfCount = order.findLastIndex((c) => c.revision === scaled);
  const firstLater = order.findIndex((c) => c.revision === after);
  t.true(firstLater > lastOfCount, 'the next revision comes after every instance of the count');
});

test('a real record deleted in the revision that puts its number in a large count never shows absent', async (t) => {
  const { store, mirror, changes } = setUp(t);
  const key = store.keys.instanceCount('web@.service');
  const real = await store.putRecord(
    codecs.unit,
    store.keys.unit('web@5.service'),
    makeUnit({ name: 'web@5.service', desiredState: 'launched' }),
  );
  await mirror.ready();
  await mirror.waitFor(real);
  let absent = 0;
  mirror.on(() => {
    if (mirror.units.get('web@5.service') === undefined) absent += 1;
  });
  changes.length = 0;
  // What a scale that folds a real record back into the count writes: the delete first.
  const res = await atomicTxn(store, (b) => {
    b.deleteIfModRevision(store.keys.unit('web@5.service'), real);
    b.putIfAbsent(key, codecs['instance-count'].encode(count([[1, 5_000]])));
  });
  await mirror.waitFor(res.revision);
  t.is(absent, 0, 'web@5 shown at every batch');
  t.is(countedIn(mirror.units.get('web@5.service')), 'web@.service');
  const five = changes.filter((c) => c.parsed?.name === 'web@5.service');
  t.deepEqual(
    five.map((c) => c.change.type),
    ['put'],
    'one change of web@5: the real record replaced by the counted one',
  );
  t.is(mirror.instances.get('web@.service')?.size, 5_000);
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

test('range arithmetic agrees with sets of numbers: subtract, add, remove, union', (t) => {
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
    const union = addRanges(ra, toRanges(b));
    t.deepEqual(expand(union), sorted([...a, ...b]));
    t.true(union.every((r, j) => j === 0 || r.first > (union[j - 1]?.last ?? 0) + 1));
    t.deepEqual(
      expand(removeNumbers(ra, b)),
      sorted(a).filter((n) => !b.includes(n)),
    );
    // Merged: no two ranges touch.
    const merged = addNumbers(ra, b);
    t.true(merged.every((r, j) => j === 0 || r.first > (merged[j - 1]?.last ?? 0) + 1));
  }
});

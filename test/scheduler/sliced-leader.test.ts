/**
 * A leader's pass runs in slices of time (lib/sliced.ts): when the term ends in
 * the middle of one, the pass stops at its next slice and writes nothing, and the successor
 * places everything from its own view. Real etcd, real election, real engine.
 */
import test, { type ExecutionContext } from 'ava';
import { pino } from 'pino';
import type { Unit } from '../../proto/flotilla/v1/records.js';
import { decideWork } from '../../scheduler/leader/commit.js';
import { Engine } from '../../scheduler/leader/engine.js';
import { Leadership } from '../../scheduler/leader/leadership.js';
import { plan, runToEnd } from '../../scheduler/planner/index.js';
import { ClusterCache } from '../../scheduler/view/cluster-cache.js';
import { parseUnit } from '../../unit/index.js';
import { atomicTxn, ClusterMirror, codecs, type Store } from '../../store/index.js';
import { assertEventually, etcdForFile, makeMachine, unitText } from '../../testkit/index.js';
import { placements, prefixFor, testStore } from './harness.js';

const server = etcdForFile(test);
const silent = pino({ level: process.env['FLOTILLA_TEST_LOG'] ?? 'silent' }, pino.destination(2));

const UNITS = 4_000;
const IMPOSSIBLE = 5;

/** 40 machines, UNITS plain units and IMPOSSIBLE units no machine's metadata satisfies. */
async function fill(store: Store): Promise<bigint> {
  const plain = unitText();
  const nowhere = unitText({ xfleet: { MachineMetadata: 'zone=nowhere' } });
  const units: Unit[] = [];
  for (let i = 1; i <= UNITS + IMPOSSIBLE; i++) {
    const name = `u${String(i).padStart(5, '0')}.service`;
    const file = i > UNITS ? nowhere : plain;
    units.push({ name, file, hash: parseUnit(name, file).hash, desiredState: 'launched' });
  }
  let revision = (
    await atomicTxn(store, (b) => {
      for (let m = 0; m < 40; m++) {
        const id = `m${String(m).padStart(2, '0')}`;
        b.putRecord(codecs.machine, store.keys.machine(id), makeMachine({ id }));
      }
    })
  ).revision;
  for (let i = 0; i < units.length; i += 100) {
    const res = await atomicTxn(store, (b) => {
      for (const u of units.slice(i, i + 100)) b.putRecord(codecs.unit, store.keys.unit(u.name), u);
    });
    revision = res.revision;
  }
  return revision;
}

/** A replica's leader side: mirror, cache, election and engine, closed at teardown. */
async function replica(t: ExecutionContext, store: Store, name: string) {
  const mirror = new ClusterMirror(store);
  t.teardown(() => mirror.close());
  const cache = new ClusterCache(store, mirror, silent);
  t.teardown(() => cache.close());
  const leadership = new Leadership(store, { name, ttlSeconds: 5 }, silent.child({ name }));
  t.teardown(() => leadership.close());
  // A 1 ms slice: a pass over 4,000 units takes many.
  const engine = new Engine(store, cache, leadership, { sliceMs: 1 }, silent.child({ name }));
  t.teardown(() => engine.close());
  await mirror.ready();
  return { mirror, cache, leadership, engine };
}

async function unscheduledCount(store: Store): Promise<number> {
  const listing = await store.listRecords(codecs.unscheduled, store.keys.dir('unscheduled'));
  return listing.items.length;
}

test('a pass whose term ends mid-way writes nothing; the successor places everything', async (t) => {
  const store = testStore(t, server(), prefixFor(t));
  const revision = await fill(store);
  const a = await replica(t, store, 'a');
  await a.mirror.waitFor(revision, 30_000);

  // The first view a's engine takes ends a's term right after: the pass it starts must stop
  // at its next slice (a's election closes, so a does not lead again).
  let viewed: () => void = () => undefined;
  const tookView = new Promise<void>((resolve) => (viewed = resolve));
  const viewSteps = a.cache.viewSteps.bind(a.cache);
  a.cache.viewSteps = function* () {
    const v = yield* viewSteps();
    void a.leadership.close();
    viewed();
    return v;
  };
  a.engine.start();
  a.leadership.start();
  await tookView;
  await a.engine.close();
  const status = a.engine.status();
  t.false(status.leader);
  t.is(status.passes, 1, 'one pass began');
  // Its plan never finished: a finished one would have found the impossible units.
  t.is(status.unscheduled, 0, 'the abandoned pass did not plan to its end');
  t.is((await placements(store)).size, 0, 'no placement written');
  t.is(await unscheduledCount(store), 0, 'no pending reason written');

  const b = await replica(t, store, 'b');
  b.engine.start();
  b.leadership.start();
  const placed = await assertEventually(
    async () => {
      const p = await placements(store);
      if (p.size < UNITS) throw new Error(`${p.size} of ${UNITS} placed`);
      return p;
    },
    { timeoutMs: 60_000, message: 'the successor places every unit' },
  );
  t.is(placed.size, UNITS);
  t.true(
    [...placed.values()].every((list) => list.length === 1),
    'each on one machine',
  );
  await assertEventually(
    async () => {
      const n = await unscheduledCount(store);
      if (n !== IMPOSSIBLE) throw new Error(`${n} pending records`);
    },
    { timeoutMs: 30_000, message: 'the impossible units are reported pending' },
  );
  t.is(b.engine.status().unscheduled, IMPOSSIBLE);
});

test('a view built in slices leaves placements written meanwhile to the next pass', async (t) => {
  const store = testStore(t, server(), prefixFor(t));
  const revision = await fill(store);
  const { mirror, cache } = await replica(t, store, 'c');
  await mirror.waitFor(revision, 30_000);
  const steps = cache.viewSteps();
  steps.next(); // the walk is under way, past its first names
  // Meanwhile a unit appears before the walk's position, with a placement: the walk will not
  // see the unit, but the placement is in the mirror when the walk reaches placements.
  const name = 'a0000.service';
  const file = unitText();
  const unit: Unit = { name, file, hash: parseUnit(name, file).hash, desiredState: 'launched' };
  const written = await atomicTxn(store, (b) => {
    b.putRecord(codecs.unit, store.keys.unit(name), unit);
    b.putRecord(codecs.placement, store.keys.placement('m00', name), {
      unit: name,
      machine: 'm00',
      hash: unit.hash,
      epoch: 1n,
      desiredState: 'launched',
      ports: [],
    });
  });
  await mirror.waitFor(written.revision, 30_000);
  const view = runToEnd(steps);
  t.false(
    view.snapshot.units.some((u) => u.name === name),
    'the unit came after the walk passed',
  );
  t.true(view.revision < written.revision, 'the view is dated from the start of its walk');
  const p = plan(view.snapshot);
  t.true(
    p.unplace.some((d) => d.unit === name),
    'the planner takes it for inactive',
  );
  const key = store.keys.placement('m00', name);
  const guarded = decideWork(store.keys, view, p, 1n, view.revision);
  t.false(
    guarded.first.some((op) => op.key === key),
    'no delete of a placement written after the view',
  );
  t.is(guarded.stale, 1);
  const unguarded = decideWork(store.keys, view, p, 1n);
  t.true(
    unguarded.first.some((op) => op.key === key),
    'without the guard it would be deleted',
  );
});

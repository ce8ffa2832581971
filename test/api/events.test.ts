import { status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import test from 'ava';
import { WatchRequest, type Event, type EventBatch } from '../../proto/flotilla/v1/events.js';
import {
  MachineConfig,
  Placement,
  UnitState,
  Unscheduled,
} from '../../proto/flotilla/v1/records.js';
import { atomicTxn, ClusterMirror, codecs, type Store } from '../../store/index.js';
import { etcdForFile, makeMachine, makeUnit, TurnCounter, unitText } from '../../testkit/index.js';
import { followMirror } from '../../scheduler/api/events.js';
import { CALL_TIMEOUT_MS, isServiceError, quietLogger, startApi } from './api-kit.js';

const server = etcdForFile(test);

/** Events of `stream` until `done` holds for what arrived; rejects on a stream error or timeout. */
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
    const onData = (e: Event): void => {
      events.push(e);
      if (done(events)) {
        clearTimeout(timer);
        stream.off('data', onData);
        resolve(events);
      }
    };
    stream.on('data', onData);
    stream.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** The stream's error status (it must end with one). */
function streamError(stream: ClientReadableStream<Event>): Promise<ServiceError> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('stream did not fail')), CALL_TIMEOUT_MS);
    stream.once('error', (err) => {
      clearTimeout(timer);
      if (isServiceError(err)) resolve(err);
      else reject(err);
    });
  });
}

function headers(stream: ClientReadableStream<Event>): Promise<void> {
  return new Promise((resolve) => stream.once('metadata', () => resolve()));
}

const id = (e: Event): string => `${e.revision}:${e.kind}:${e.type}:${e.name}:${e.machine}`;

/** Writes one change of every kind, each at its own revision; returns how many. */
async function writeEveryKind(store: Store): Promise<number> {
  const k = store.keys;
  const m = makeMachine({ id: 'm1' });
  await store.putRecord(codecs.unit, k.unit('a.service'), makeUnit({ name: 'a.service' }));
  await store.putRecord(codecs.machine, k.machine('m1'), m);
  await store.putRecord(
    codecs['machine-metadata'],
    k.machineMetadata('m1'),
    MachineConfig.fromPartial({ machine: 'm1', drained: true }),
  );
  await store.putRecord(
    codecs.placement,
    k.placement('m1', 'a.service'),
    Placement.fromPartial({ unit: 'a.service', machine: 'm1' }),
  );
  await store.putRecord(
    codecs.state,
    k.state('m1', 'a.service'),
    UnitState.fromPartial({ name: 'a.service', machine: 'm1', activeState: 'active' }),
  );
  await store.putRecord(
    codecs.unscheduled,
    k.unscheduled('b.service'),
    Unscheduled.fromPartial({ unit: 'b.service', summary: '0/1 machines' }),
  );
  await store.put(k.election() + 'candidate', 'not reported');
  await store.delete(k.placement('m1', 'a.service'));
  await store.delete(k.state('m1', 'a.service'));
  await store.delete(k.unit('a.service'));
  return 9; // the election key is not an event
}

test.serial(
  'a watch from a compacted revision older than the replica holds is OUT_OF_RANGE',
  async (t) => {
    const api = await startApi(t, server());
    await api.store.put(api.store.keys.unit('x.service'), '{}');
    await api.store.compact(await api.store.revision());
    // Revision 1 precedes everything the replica's mirror has seen: etcd must replay it.
    const err = await streamError(api.watch({ fromRevision: 1n }));
    t.is(err.code, status.OUT_OF_RANGE);
    t.regex(err.details, /compacted/);
  },
);

test.serial(
  'a watch within the replica history is served from it, even after etcd compacted it',
  async (t) => {
    const api = await startApi(t, server());
    await api.list({}); // the mirror has listed: what follows is in its history
    const first = await api.store.putRecord(
      codecs.unit,
      api.store.keys.unit('y.service'),
      makeUnit({ name: 'y.service' }),
    );
    await api.list({}); // and has seen the write
    await api.store.compact(await api.store.revision());
    const [event] = await collectUntil(api.watch({ fromRevision: first }), (es) => es.length >= 1);
    t.is(event?.revision, first);
    t.is(event?.name, 'y.service');
  },
);

test('a watch from now reports an API write with its revision once headers arrived', async (t) => {
  const api = await startApi(t, server());
  const stream = api.watch({ withFiles: true });
  await headers(stream);
  const events = collectUntil(stream, (es) => es.length >= 1);
  const res = await api.submit({ files: [{ name: 'w.service', contents: unitText() }] });
  const [event] = await events;
  t.is(event?.revision, res.revision);
  t.is(event?.kind, 'unit');
  t.is(event?.type, 'put');
  t.is(event?.name, 'w.service');
  t.is(event?.unit?.file, unitText());
});

test('unit events leave the file out unless asked, and say whether the unit is Global', async (t) => {
  const api = await startApi(t, server());
  const stream = api.watch({});
  await headers(stream);
  const events = collectUntil(stream, (es) => es.length >= 2);
  await api.submit({
    files: [
      { name: 'g.service', contents: unitText({ xfleet: { Global: 'true' } }) },
      { name: 'p.service', contents: unitText() },
    ],
  });
  const byName = new Map((await events).map((e) => [e.name, e]));
  t.is(byName.get('g.service')?.unit?.file, '');
  t.true(byName.get('g.service')?.global);
  t.not(byName.get('p.service')?.unit?.hash, '');
  t.false(byName.get('p.service')?.global);
});

test('every kind of change is reported, deletes with the last record', async (t) => {
  const api = await startApi(t, server());
  const start = (await api.store.revision()) + 1n;
  const count = await writeEveryKind(api.store);
  const events = await collectUntil(api.watch({ fromRevision: start }), (es) => es.length >= count);
  t.deepEqual(
    events.map((e) => [e.kind, e.type, e.name, e.machine]),
    [
      ['unit', 'put', 'a.service', ''],
      ['machine', 'put', 'm1', 'm1'],
      ['machine-config', 'put', 'm1', 'm1'],
      ['placement', 'put', 'a.service', 'm1'],
      ['state', 'put', 'a.service', 'm1'],
      ['unscheduled', 'put', 'b.service', ''],
      ['placement', 'delete', 'a.service', 'm1'],
      ['state', 'delete', 'a.service', 'm1'],
      ['unit', 'delete', 'a.service', ''],
    ],
  );
  t.is(events[2]?.machineConfig?.drained, true);
  t.is(events[8]?.unit?.name, 'a.service', 'a delete carries the record it removed');
  t.is(events[7]?.state?.activeState, 'active');
  const revisions = events.map((e) => e.revision);
  t.deepEqual(
    revisions,
    [...revisions].sort((a, b) => (a < b ? -1 : 1)),
  );
});

test('a watch resumed from the last seen revision + 1 misses and repeats nothing', async (t) => {
  const api = await startApi(t, server());
  const start = (await api.store.revision()) + 1n;
  const count = await writeEveryKind(api.store);
  const full = await collectUntil(api.watch({ fromRevision: start }), (es) => es.length >= count);

  const firstStream = api.watch({ fromRevision: start });
  const head = await collectUntil(firstStream, (es) => es.length >= 4);
  firstStream.cancel();
  const last = head[head.length - 1]?.revision ?? 0n;
  const tail = await collectUntil(
    api.watch({ fromRevision: last + 1n }),
    (es) => es.length >= count - head.length,
  );
  t.deepEqual([...head, ...tail].map(id), full.map(id));
  // Later writes reach a resumed stream too.
  const live = api.watch({ fromRevision: last + 1n });
  const more = collectUntil(live, (es) => es.some((e) => e.name === 'later.service'));
  await api.submit({ files: [{ name: 'later.service', contents: unitText() }] });
  const got = await more;
  t.deepEqual(got.slice(0, tail.length).map(id), tail.map(id));
});

test('the unit glob and machine filters keep only matching events', async (t) => {
  const api = await startApi(t, server());
  const k = api.store.keys;
  const start = (await api.store.revision()) + 1n;
  const put = (name: string) => api.store.putRecord(codecs.unit, k.unit(name), makeUnit({ name }));
  const placeOn = (unit: string, machine: string) =>
    api.store.putRecord(
      codecs.placement,
      k.placement(machine, unit),
      Placement.fromPartial({ unit, machine }),
    );
  await put('web@1.service');
  await put('db.service');
  await placeOn('web@1.service', 'm1');
  await placeOn('db.service', 'm2');
  await api.store.putRecord(
    codecs.state,
    k.state('m2', 'db.service'),
    UnitState.fromPartial({ name: 'db.service', machine: 'm2' }),
  );
  await api.store.putRecord(codecs.machine, k.machine('m2'), makeMachine({ id: 'm2' }));
  await api.store.putRecord(codecs.machine, k.machine('m1'), makeMachine({ id: 'm1' }));
  await put('web@2.service'); // sentinel for the glob watch
  await placeOn('zzz.service', 'm2'); // sentinel for the machine watch

  const byGlob = await collectUntil(api.watch({ fromRevision: start, unitGlob: 'web@*' }), (es) =>
    es.some((e) => e.name === 'web@2.service'),
  );
  t.deepEqual(
    byGlob.map((e) => `${e.kind}:${e.name}`),
    [
      'unit:web@1.service',
      'placement:web@1.service',
      'machine:m2',
      'machine:m1',
      'unit:web@2.service',
    ],
  );
  const byMachine = await collectUntil(api.watch({ fromRevision: start, machine: 'm2' }), (es) =>
    es.some((e) => e.name === 'zzz.service'),
  );
  t.deepEqual(
    byMachine.map((e) => `${e.kind}:${e.name}`),
    ['placement:db.service', 'state:db.service', 'machine:m2', 'placement:zzz.service'],
  );
});

test('WatchBatches sends the events Watch sends, in order, many to a message', async (t) => {
  const api = await startApi(t, server());
  const start = (await api.store.revision()) + 1n;
  const names = Array.from({ length: 1_500 }, (_, i) => `b${String(i).padStart(4, '0')}.service`);
  for (let i = 0; i < names.length; i += 100) {
    await atomicTxn(api.store, (b) => {
      for (const name of names.slice(i, i + 100))
        b.putRecord(codecs.unit, api.store.keys.unit(name), makeUnit({ name }));
    });
  }
  const single = await collectUntil(
    api.watch({ fromRevision: start }),
    (es) => es.length >= names.length,
  );
  const stream = api.events.watchBatches({ ...WatchRequest.create(), fromRevision: start });
  t.teardown(() => stream.cancel());
  const sizes: number[] = [];
  const batched = await new Promise<Event[]>((resolve, reject) => {
    const events: Event[] = [];
    const timer = setTimeout(() => reject(new Error('timed out')), CALL_TIMEOUT_MS);
    stream.on('data', (batch: EventBatch) => {
      sizes.push(batch.events.length);
      events.push(...batch.events);
      if (events.length >= names.length) {
        clearTimeout(timer);
        resolve(events);
      }
    });
    stream.once('error', reject);
  });
  t.deepEqual(batched.map(id), single.map(id));
  t.deepEqual(
    batched.map((e) => e.name),
    names,
  );
  t.true(sizes.length < names.length / 10, `${sizes.length} messages for ${names.length} events`);
  t.true(Math.max(...sizes) <= 1_000, 'at most 1,000 events a message');
});

test('a watch resumed from before 10,000 changes gets them in order, translated a slice per turn', async (t) => {
  // Translated in one go, the history of a 100,000-instance scale held the thread 195 ms.
  const api = await startApi(t, server());
  const mirror = new ClusterMirror(api.store);
  t.teardown(() => mirror.close());
  await mirror.ready();
  const start = (await api.store.revision()) + 1n;
  const names = Array.from({ length: 10_000 }, (_, i) => `s${String(i).padStart(5, '0')}.service`);
  for (let i = 0; i < names.length; i += 100) {
    await atomicTxn(api.store, (b) => {
      for (const name of names.slice(i, i + 100))
        b.putRecord(codecs.unit, api.store.keys.unit(name), makeUnit({ name }));
    });
  }
  await mirror.waitFor(await api.store.revision());
  const turns = new TurnCounter();
  t.teardown(() => turns.stop());
  const perTurn = new Map<number, number>();
  const got: string[] = [];
  const ctx = {
    logger: quietLogger,
    store: api.store,
    mirror,
    open: new Set<() => void>(),
    endpoints: [],
  };
  const all = new Promise<void>((resolve, reject) => {
    const feed = followMirror(
      ctx,
      mirror,
      { ...WatchRequest.create(), fromRevision: start },
      undefined,
      {
        events: (events) => {
          perTurn.set(turns.turn, (perTurn.get(turns.turn) ?? 0) + events.length);
          for (const e of events) got.push(e.name);
          if (got.length >= names.length) resolve();
        },
        lost: reject,
      },
    );
    if (feed === undefined) reject(new Error('the mirror does not hold the revision'));
    else t.teardown(() => feed.close());
  });
  await all;
  t.deepEqual(got, names, 'every change, in order');
  const most = Math.max(...perTurn.values());
  t.log(`events per turn: most ${most}, over ${perTurn.size} turns`);
  t.true(most <= 2_000, `${most} events translated in one turn`);
});

/**
 * Units.SummarizeInstances against the real API over a real etcd: the placements, pending
 * reasons and agent reports are written as the leader and the agents write them, and the
 * counts are what `flotctl scale` judges a large scale by.
 */
import { readFileSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import test from 'ava';
import { Placement, UnitState, Unscheduled } from '../../proto/flotilla/v1/records.js';
import type { InstanceSummary, SummarizeInstancesRequest } from '../../proto/flotilla/v1/units.js';
import { codecs, type Store } from '../../store/index.js';
import { assertEventually, etcdForFile, EXAMPLES } from '../../testkit/index.js';
import { failure, rpc, startApi, type Api } from './api-kit.js';

const WEB = readFileSync(`${EXAMPLES}web@.service`, 'utf8');
const M1 = 'a'.repeat(32);
const M2 = 'b'.repeat(32);

const server = etcdForFile(test);

const web = (n: number): string => `web@${n}.service`;

function summarize(api: Api, r: Partial<SummarizeInstancesRequest>): Promise<InstanceSummary> {
  const req: SummarizeInstancesRequest = {
    template: 'web@.service',
    sinceRevision: 0n,
    instances: [],
    started: [],
    destroyed: [],
    ...r,
  };
  return rpc(api.units.summarizeInstances.bind(api.units), req);
}

async function place(store: Store, n: number, machine: string, hash: string): Promise<void> {
  const p = Placement.fromPartial({ unit: web(n), machine, hash, desiredState: 'launched' });
  await store.putRecord(codecs.placement, store.keys.placement(machine, web(n)), p);
}

async function report(
  store: Store,
  n: number,
  machine: string,
  activeState: string,
  hash: string,
  message = '',
): Promise<bigint> {
  const s = UnitState.fromPartial({
    name: web(n),
    machine,
    hash,
    activeState,
    loadState: 'loaded',
    message,
  });
  return store.putRecord(codecs.state, store.keys.state(machine, web(n)), s);
}

/** web@.service submitted and scaled to `count` (no machines: every instance waits). */
async function scaled(t: Parameters<typeof startApi>[0], count: number) {
  const api = await startApi(t, server());
  await api.submit({ files: [{ name: 'web@.service', contents: WEB }] });
  const res = await api.scale('web', count, { allowPending: true });
  const hash = (await api.get('web@.service')).unit?.hash ?? '';
  return { api, revision: res.revision, hash };
}

test('counts instances launched, placed, failed and waiting, each failure with its report', async (t) => {
  const { api, revision, hash } = await scaled(t, 30);
  const all = { sinceRevision: revision, instances: [{ first: 1, last: 30 }] };
  const none = await summarize(api, { ...all, started: [{ first: 1, last: 30 }] });
  t.like(none, { wanted: 30, launched: 0, placed: 0, pending: 0, failed: 0, missing: 0 });

  for (let n = 1; n <= 20; n++) await place(api.store, n, n % 2 === 0 ? M1 : M2, hash);
  for (let n = 1; n <= 12; n++) await report(api.store, n, n % 2 === 0 ? M1 : M2, 'active', hash);
  await report(api.store, 13, M2, 'activating', hash);
  await report(api.store, 14, M1, 'active', 'an-older-file');
  await report(api.store, 15, M2, 'failed', hash, 'exec /bin/nope: not found');
  await report(api.store, 17, M1, 'active', hash); // web@17 is placed on M2: not there
  const waiting = Unscheduled.fromPartial({
    unit: 'web@.service',
    summary: '0/2 machines: 2 lack region=us',
    waitingRanges: [{ first: 26, last: 30 }],
  });
  const last = await api.store.putRecord(
    codecs.unscheduled,
    api.store.keys.unscheduled('web@.service'),
    waiting,
  );

  // Read at or after the last write; nothing was started at it, so every answer is news.
  const s = await summarize(api, { ...all, sinceRevision: last });
  t.like(s, {
    wanted: 30,
    launched: 12,
    placed: 8,
    pending: 5,
    pendingFinal: 5,
    pendingSummary: '0/2 machines: 2 lack region=us',
    failed: 1,
    missing: 0,
    stopping: 0,
  });
  t.deepEqual(
    s.failures.map((f) => `${f.name} ${f.machine} ${f.message}`),
    [`web@15.service ${M2} exec /bin/nope: not found`],
  );
  t.true(s.revision >= revision);
});

test('a failure or pending reason from before the scale counts only for instances it did not start', async (t) => {
  const { api, revision: first, hash } = await scaled(t, 4);
  await place(api.store, 3, M1, hash);
  await report(api.store, 3, M1, 'failed', hash, 'out of memory');
  const waiting = Unscheduled.fromPartial({
    unit: 'web@.service',
    summary: '0/2 machines: 2 are full',
    waitingRanges: [{ first: 4, last: 4 }],
  });
  const at = await api.store.putRecord(
    codecs.unscheduled,
    api.store.keys.unscheduled('web@.service'),
    waiting,
  );
  t.true(at > first);
  const req = { sinceRevision: at, instances: [{ first: 1, last: 4 }] };
  const restarted = await summarize(api, { ...req, started: [{ first: 3, last: 4 }] });
  t.like(restarted, { failed: 0, placed: 1, pending: 1, pendingFinal: 0 }, 'an earlier life');
  const kept = await summarize(api, req);
  t.like(kept, { failed: 1, pending: 1, pendingFinal: 1 }, 'the standing answer');
  // Reported after it: news, whether the scale started it or not.
  await report(api.store, 3, M1, 'failed', hash, 'out of memory again');
  const fresh = await assertEventually(async () => {
    const r = await summarize(api, { ...req, started: [{ first: 3, last: 4 }] });
    return r.failed === 1 && r;
  });
  t.is(fresh.failures[0]?.message, 'out of memory again');
});

test('instances scaled away count while placed or running, and the answer names them', async (t) => {
  const { api, hash } = await scaled(t, 10);
  for (const n of [7, 8, 9, 10]) await place(api.store, n, M1, hash);
  for (const n of [7, 8, 9, 10]) await report(api.store, n, M1, 'active', hash);
  const down = await api.scale('web', 6);
  const req = { sinceRevision: down.revision, destroyed: [{ first: 7, last: 10 }] };
  // The leader has not unplaced them yet: all four still run.
  const before = await summarize(api, { ...req, instances: [{ first: 1, last: 6 }] });
  t.like(before, { wanted: 6, stopping: 4, missing: 0 });
  t.deepEqual(before.stoppingRanges, [{ first: 7, last: 10 }]);
  // 7 and 8 unplaced and stopped, 9 unplaced but still running.
  for (const n of [7, 8, 9]) await api.store.delete(api.store.keys.placement(M1, web(n)));
  await api.store.delete(api.store.keys.state(M1, web(8)));
  const last = await report(api.store, 7, M1, 'inactive', hash);
  const after = await summarize(api, { ...req, sinceRevision: last });
  t.is(after.stopping, 2);
  t.deepEqual(after.stoppingRanges, [{ first: 9, last: 10 }]);
  // Destroyed while a client waited on it: missing.
  const destroyed = await api.destroy([web(2)]);
  const gone = await summarize(api, {
    sinceRevision: destroyed.revision,
    instances: [{ first: 1, last: 6 }],
  });
  t.is(gone.missing, 1);
});

test('bad requests are refused, saying what is wrong, and a count of millions is refused', async (t) => {
  const { api } = await scaled(t, 2);
  const plain = await failure(summarize(api, { template: 'web.service' }));
  t.is(plain.code, status.INVALID_ARGUMENT);
  t.regex(plain.details, /not a template/);
  const backwards = await failure(summarize(api, { instances: [{ first: 5, last: 2 }] }));
  t.is(backwards.code, status.INVALID_ARGUMENT);
  t.regex(backwards.details, /instances: 5\.\.2 is not a range/);
  const huge = await failure(
    summarize(api, {
      instances: [{ first: 1, last: 1_500_000 }],
      destroyed: [{ first: 1_500_001, last: 3_000_000 }],
    }),
  );
  t.is(huge.code, status.INVALID_ARGUMENT);
  t.regex(huge.details, /3000000 instances; at most 2000000/);
  const ahead = await failure(
    summarize(api, { sinceRevision: 1_000_000_000n, instances: [{ first: 1, last: 2 }] }),
  );
  t.is(ahead.code, status.UNAVAILABLE);
  t.regex(ahead.details, /has not reached revision 1000000000/);
});

test('100,000 counted instances are counted in slices, within a generous bound', async (t) => {
  const api = await startApi(t, server(), { maxInstances: 100_000 });
  await api.submit({ files: [{ name: 'web@.service', contents: WEB }] });
  const res = await api.scale('web', 100_000, { allowPending: true });
  const started = performance.now();
  const s = await summarize(api, {
    sinceRevision: res.revision,
    instances: [{ first: 1, last: 100_000 }],
    destroyed: [{ first: 100_001, last: 200_000 }],
  });
  const ms = performance.now() - started;
  t.like(s, { wanted: 100_000, launched: 0, missing: 0, stopping: 0 });
  t.log(`counted 100,000 instances and 100,000 scaled away in ${Math.round(ms)} ms`);
  t.true(ms < 10_000, `took ${Math.round(ms)} ms`);
});

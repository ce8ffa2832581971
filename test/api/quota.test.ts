/**
 * The quota guard (issue 26): the API refuses writes that would take etcd's database past a
 * share of its quota, with RESOURCE_EXHAUSTED saying how full etcd is, before etcd's own
 * NOSPACE alarm (which refuses destroys too). A real etcd of this file's own, filled with
 * real writes; the API is told a quota of 9.5 MiB (etcd's own stays at its 2 GiB default, so
 * only the guard refuses).
 */
import { readFileSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import test from 'ava';
import { QuotaGuard } from '../../scheduler/api/quota.js';
import { codecs, openStore, type Store } from '../../store/index.js';
import { etcdForFile, EXAMPLES, makeMachine, unitText, uniquePrefix } from '../../testkit/index.js';
import { failure, fingerprint, startApi, unitNames } from './api-kit.js';

const server = etcdForFile(test);

const QUOTA = 9.5 * 1024 * 1024;
const SHARE = 0.8;

/** Writes 256 KiB values outside any cluster's prefix until etcd's file is past `bytes`. */
async function fillPast(store: Store, bytes: number): Promise<number> {
  const value = Buffer.alloc(256 * 1024, 'x');
  for (let i = 0; i < 64; i++) {
    const size = await store.dbSize();
    if (size > bytes) return size;
    await store.put(`/quota-test-fill/${i}`, value);
  }
  throw new Error(`etcd's database did not pass ${bytes} bytes after 16 MiB of writes`);
}

test.serial(
  'past the share a write is refused with how full etcd is and writes nothing; destroy, scale down and stop still work',
  async (t) => {
    const api = await startApi(t, server(), {
      quota: { quotaBytes: QUOTA, share: SHARE, refreshMs: 0 },
    });
    const m = makeMachine({ id: 'm1' });
    await api.store.putRecord(codecs.machine, api.store.keys.machine(m.id), m);
    const web = readFileSync(`${EXAMPLES}web@.service`, 'utf8');
    await api.submit({
      files: [
        { name: 'web@.service', contents: web },
        { name: 'a.service', contents: unitText() },
      ],
      desiredState: '',
    });
    await api.scale('web', 1);
    await api.setDesired(['a.service'], 'launched');

    const size = await fillPast(api.store, QUOTA * SHARE);
    t.log(`etcd's database: ${size} bytes, ${Math.floor((size / QUOTA) * 100)}% of the quota`);
    const before = await fingerprint(api.store);
    const refusals = [
      failure(api.submit({ files: [{ name: 'b.service', contents: unitText() }] })),
      failure(api.scale('web', 2, { allowPending: true })),
      failure(api.setDesired(['web@9.service'], 'launched', true)),
    ];
    for (const refused of refusals) {
      const err = await refused;
      t.is(err.code, status.RESOURCE_EXHAUSTED, err.details);
      t.regex(
        err.details,
        /^etcd is \d+% full \([\d.]+ MiB of 9\.5 MiB, and this write adds about [\d.]+ (bytes|KiB); refusing writes past 80%\): destroy or scale down what is not needed, compact and defragment etcd \(docs\/operations\.md\), or raise --etcd-quota-bytes with etcd's --quota-backend-bytes$/,
      );
    }
    t.deepEqual(await fingerprint(api.store), before, 'nothing was written, not even in part');

    // What frees space is never refused.
    t.deepEqual((await api.setDesired(['a.service'], 'inactive')).changed, ['a.service']);
    t.deepEqual((await api.scale('web', 0)).destroyed, ['web@1.service']);
    t.deepEqual((await api.destroy(['a.service'])).destroyed, ['a.service']);
    t.deepEqual(await unitNames(api.store), ['web@.service']);
  },
);

test.serial(
  'the guard asks etcd its size at most once per refresh, however many writes',
  async (t) => {
    const store = openStore({ endpoints: server().endpoint, prefix: uniquePrefix('quota-cache') });
    t.teardown(() => store.close());
    let asked = 0;
    store.onRequest((r) => {
      if (r.op === 'status') asked++;
    });
    let now = 0;
    const guard = new QuotaGuard(store, {
      quotaBytes: 2 * 1024 ** 3,
      refreshMs: 1000,
      now: () => now,
    });
    await Promise.all(Array.from({ length: 50 }, () => guard.check(1000)));
    for (let i = 0; i < 50; i++) await guard.check(1000);
    t.is(asked, 1, '100 checks within one second: one status call');
    now += 1000;
    await guard.check(1000);
    t.is(asked, 2, 'a second later: one more');
  },
);

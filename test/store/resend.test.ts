/**
 * The resend policy on its own (store/resend.ts): when a call waiting on etcd is sent again.
 * etcd's answers to "which raft term?" are scripted here, so each case is exact; the real
 * thing, a write sent as etcd's raft leader dies, is test/chaos/etcd-member-write.test.ts.
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { StoreError } from '../../store/index.js';
import { Resender, type RaftView } from '../../store/resend.js';

const SUSPECT_MS = 50;

/** etcd's raft view as the test sets it, and how often it was asked. */
function raft(initial: RaftView) {
  let view = initial;
  let asked = 0;
  return {
    status: async (): Promise<RaftView> => {
      asked += 1;
      return view;
    },
    set(next: RaftView): void {
      view = next;
    },
    get asked(): number {
      return asked;
    },
  };
}

/** An attempt that never answers (a write held for a dead leader), and one that answers. */
const held = (): Promise<string> => new Promise<string>(() => undefined);

test('a slow call under the same raft leader is sent once, however long it takes', async (t) => {
  const etcd = raft({ term: 7n, leader: 1n });
  const resender = new Resender(etcd.status, SUSPECT_MS);
  resender.saw(7n);
  let sent = 0;
  const result = await resender.run(async () => {
    sent += 1;
    await sleep(SUSPECT_MS * 8);
    return 'done';
  }, 5_000);
  t.deepEqual(result, { value: 'done', resent: 0 });
  t.is(sent, 1, 'never sent again: etcd was only slow');
  t.true(etcd.asked >= 1 && etcd.asked <= 8, `asked ${etcd.asked} times`);
});

test('a call stranded by a raft leader change is sent again once the new leader is elected', async (t) => {
  const etcd = raft({ term: 7n, leader: 1n });
  const resender = new Resender(etcd.status, SUSPECT_MS);
  resender.saw(7n);
  const attempts = [held, async () => 'second'];
  let sent = 0;
  const started = Date.now();
  const running = resender.run(() => (attempts[sent++] ?? held)(), 5_000);
  await sleep(SUSPECT_MS * 3);
  t.is(sent, 1, 'not sent again while the term is the same');
  etcd.set({ term: 8n, leader: 0n }); // an election under way: no leader yet
  await sleep(SUSPECT_MS * 3);
  t.is(sent, 1, 'not sent again while there is no leader');
  etcd.set({ term: 8n, leader: 2n });
  t.deepEqual(await running, { value: 'second', resent: 1 });
  t.true(Date.now() - started < 2_000, `took ${Date.now() - started} ms`);
});

test('a call is sent again at most once per new term, and gives up within its budget', async (t) => {
  const etcd = raft({ term: 3n, leader: 1n });
  const resender = new Resender(etcd.status, SUSPECT_MS);
  resender.saw(3n);
  let sent = 0;
  const started = Date.now();
  const running = resender.run(
    () => {
      sent += 1;
      return held();
    },
    600,
    '/k',
  );
  etcd.set({ term: 4n, leader: 2n });
  const err = await t.throwsAsync(running, { instanceOf: StoreError });
  t.is(err?.code, 'deadline');
  t.is(err?.key, '/k');
  t.regex(err?.message ?? '', /within 600 ms.*retry later/);
  t.is(sent, 2, 'once for the new term, not again while it stays');
  const took = Date.now() - started;
  t.true(took >= 600 && took < 600 + 1_000, `took ${took} ms`);
});

test('a failure of the attempt is the failure of the call; status errors change nothing', async (t) => {
  const resender = new Resender(() => Promise.reject(new Error('member down')), SUSPECT_MS);
  const boom = new StoreError('conflict', 'guard failed');
  await t.throwsAsync(
    resender.run(async () => {
      await sleep(SUSPECT_MS * 3);
      throw boom;
    }, 5_000),
    { is: boom },
  );
});

test('with no raft term known yet, the first answer is the baseline, not a change', async (t) => {
  const etcd = raft({ term: 9n, leader: 1n });
  const resender = new Resender(etcd.status, SUSPECT_MS);
  let sent = 0;
  const result = await resender.run(async () => {
    sent += 1;
    await sleep(SUSPECT_MS * 4);
    return 'done';
  }, 5_000);
  t.deepEqual(result, { value: 'done', resent: 0 });
  t.is(sent, 1);
});

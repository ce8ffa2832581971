/**
 * An etcd endpoint whose connection just failed is passed over while another one answers
 * (store/fault-policy.ts): a watch opened again after its member died does not land on that
 * member again and again, and with every endpoint down a call still fails saying why.
 */
import test from 'ava';
import { openStore, type Store } from '../../store/index.js';
import { SKIP_FAILED_MS } from '../../store/fault-policy.js';
import { prefixRangeEnd } from '../../store/keys.js';
import { etcdForFile, freePorts, uniquePrefix } from '../../testkit/index.js';

const etcd = etcdForFile(test);

/** Opens one watch stream: whether etcd set the watch up (false: the stream failed). */
async function openWatch(store: Store): Promise<boolean> {
  const stream = await store.client.watchClient.watch();
  return new Promise((resolve) => {
    let settled = false;
    const done = (created: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.cancel();
      resolve(created);
    };
    const timer = setTimeout(() => done(false), 5_000);
    stream.on('data', (res: { created?: boolean }) => done(res.created === true));
    stream.on('error', () => done(false));
    const key = Buffer.from(store.keys.prefix);
    stream.write({ create_request: { key, range_end: prefixRangeEnd(key) } });
  });
}

const closedEndpoints = async (n: number): Promise<string[]> =>
  (await freePorts(n)).map((p) => `http://127.0.0.1:${p}`);

test('watches opened one after another land on the endpoint that answers, not on the dead ones again', async (t) => {
  const dead = await closedEndpoints(4);
  const store = openStore({ endpoints: [...dead, etcd().endpoint], prefix: uniquePrefix('skip') });
  t.teardown(() => store.close());
  const started = performance.now();
  const outcomes: boolean[] = [];
  for (let i = 0; i < 20; i++) outcomes.push(await openWatch(store));
  const elapsedMs = performance.now() - started;
  const failed = outcomes.filter((ok) => !ok).length;
  t.log(
    `20 watches over 4 dead endpoints and 1 live in ${Math.round(elapsedMs)} ms: ${failed} failed`,
  );
  // etcd3 goes round the endpoints in shuffled order: without the skip, 4 in 5 would fail
  // (16 of 20). A dead endpoint is passed over for SKIP_FAILED_MS after it failed, then tried
  // again (it may have come back), so each fails at most once per that window: on a quiet
  // host the 20 watches take well under one window, and at most 4 fail. When a dead endpoint
  // fails is not fixed: under load (in CI once, and on the development machine beside four busy loops) the fourth
  // failed among the last 10, its first and only try.
  const windows = 1 + Math.floor(elapsedMs / SKIP_FAILED_MS);
  t.true(failed >= 1, 'a dead endpoint was tried');
  t.true(
    failed <= dead.length * windows,
    `${failed} of 20 watches failed in ${Math.round(elapsedMs)} ms (${windows} windows of ${SKIP_FAILED_MS} ms)`,
  );
});

test('with every endpoint down, a call fails as unavailable and names the connection error', async (t) => {
  const store = openStore({
    endpoints: await closedEndpoints(2),
    prefix: uniquePrefix('down'),
    callTimeoutMs: 2_000,
  });
  t.teardown(() => store.close());
  for (let i = 0; i < 3; i++) {
    const err = await t.throwsAsync(store.get(`${store.keys.prefix}k`));
    t.is((err as { code?: string }).code, 'unavailable');
    t.regex(err?.message ?? '', /ECONNREFUSED|No connection established/, 'says why');
  }
});

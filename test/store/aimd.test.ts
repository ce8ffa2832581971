/**
 * Back-pressure against a real etcd: a writer paced by an AimdWindow sends fewer requests at
 * once while etcd is slow (here: stopped with SIGSTOP for a while, as a starved or swapping
 * etcd looks from outside), and more again once it answers promptly. Never more in flight
 * than the window allows.
 */
import test from 'ava';
import { AimdWindow, atomicTxn, openStore, type Store } from '../../store/index.js';
import { etcdForFile, sleep, uniquePrefix } from '../../testkit/index.js';

const server = etcdForFile(test);

function open(label: string): Store {
  return openStore({ endpoints: server().endpoint, prefix: uniquePrefix(label) });
}

/** `count` transactions of 16 puts through `window`; the most it had in flight at once. */
async function write(store: Store, window: AimdWindow, count: number, tag: string) {
  let inFlight = 0;
  let most = 0;
  const value = Buffer.alloc(512, 'x');
  await Promise.all(
    Array.from({ length: count }, (_, i) =>
      window.run(async () => {
        inFlight += 1;
        most = Math.max(most, inFlight);
        try {
          await atomicTxn(store, (b) => {
            for (let k = 0; k < 16; k++) b.put(store.keys.unit(`${tag}-${i}-${k}.service`), value);
          });
        } finally {
          inFlight -= 1;
        }
      }),
    ),
  );
  return most;
}

test.serial(
  'a writer sends fewer transactions at once while etcd is stalled, and more again once it answers',
  async (t) => {
    const store = open('aimd');
    t.teardown(() => store.close());
    const pid = server().pid;
    if (pid === undefined) throw new Error('etcd has no pid');
    // A target of 1 s: on a loaded test machine ordinary answers stay under it.
    const window = new AimdWindow({ initial: 8, max: 32, minTargetMs: 1_000 });

    const most = await write(store, window, 200, 'warm');
    const grown = window.state.limit;
    t.true(grown > 8, `the window grew from 8 to ${grown} while etcd answered promptly`);
    t.true(most <= grown, `at most ${most} in flight, window ${grown}`);

    // etcd stalls for 2.5 s, twice, while the writer writes.
    t.teardown(() => {
      process.kill(pid, 'SIGCONT');
    });
    for (let i = 0; i < 2; i++) {
      process.kill(pid, 'SIGSTOP');
      const writes = write(store, window, 60, `stalled${i}`);
      await sleep(2_500);
      process.kill(pid, 'SIGCONT');
      await writes;
    }
    const shrunk = window.state;
    t.true(shrunk.decreases >= 1, `the window shrank ${shrunk.decreases} times`);
    t.true(shrunk.limit < grown, `window ${shrunk.limit} after the stalls, ${grown} before`);

    await write(store, window, 200, 'recovered');
    t.true(
      window.state.limit > shrunk.limit,
      `the window grew back from ${shrunk.limit} to ${window.state.limit}`,
    );
    t.is(await store.count(store.keys.dir('unit')), (200 + 120 + 200) * 16, 'every write landed');
  },
);

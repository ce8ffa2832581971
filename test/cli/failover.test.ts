/**
 * flotctl with several replicas (`--endpoint a,b`), against two real scheduler replicas run
 * as processes over a real etcd (the agents are played by sim-cluster.ts): when the replica
 * flotctl talks to is SIGKILLed, a `scale` wait, a `watch` and a write carry on at the other,
 * from the last revision seen, with no event lost or repeated and no write applied twice.
 */
import { createServer, type Socket } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import type { Machine } from '../../proto/flotilla/v1/records.js';
import { assertEventually, etcdForFile, freePorts, unitText } from '../../testkit/index.js';
import {
  placements,
  prefixFor,
  spawnReplica,
  testStore,
  type ReplicaProcess,
} from '../scheduler/harness.js';
import { addMachine, flotctl, spawnFlotctl, startTestApi, unitDir } from './cli-kit.js';
import { simulateCluster } from './sim-cluster.js';

const server = etcdForFile(test);

/** Replicas a and b, each with its API, both answering; two machines with no agents yet. */
async function twoReplicas(t: ExecutionContext) {
  const prefix = prefixFor(t);
  const store = testStore(t, server(), prefix);
  const [portA, portB] = await freePorts(2);
  const apiA = `127.0.0.1:${portA}`;
  const apiB = `127.0.0.1:${portB}`;
  const a = spawnReplica(t, server(), prefix, 'sched-a', [`--listen=${apiA}`]);
  const b = spawnReplica(t, server(), prefix, 'sched-b', [`--listen=${apiB}`]);
  for (const api of [apiA, apiB]) {
    await assertEventually(
      async () => {
        const r = await flotctl(['--endpoint', api, 'list-schedulers', '--no-legend']);
        if (!/ yes /.test(r.stdout) || !r.stdout.includes('sched-b'))
          throw new Error(r.stdout + r.stderr);
      },
      { timeoutMs: 30_000, message: `${api} answers and a leader is elected` },
    );
  }
  const machines: Machine[] = [
    await addMachine(store, { addresses: ['10.0.0.1'] }),
    await addMachine(store, { addresses: ['10.0.0.2'] }),
  ];
  const both = `${apiA},${apiB}`;
  return { store, a, b, apiA, apiB, both, machines };
}

async function kill(replica: ReplicaProcess): Promise<void> {
  replica.child.kill('SIGKILL');
  await replica.exited;
}

/** Watch lines without their clock column, up to and including the first matching `last`. */
function eventsUpTo(stdout: string, last: RegExp): string[] {
  const lines = stdout.split('\n').map((l) => l.replace(/^\S+\s+/, ''));
  const end = lines.findIndex((l) => last.test(l));
  return end < 0 ? lines : lines.slice(0, end + 1);
}

test.serial(
  'a scale wait whose replica is SIGKILLed carries on at the other and reports every instance launched',
  async (t) => {
    const { store, a, apiB, both, machines } = await twoReplicas(t);
    const dir = await unitDir(t, { 'web@.service': unitText() });
    const submitted = await flotctl(['--endpoint', apiB, 'submit', `${dir}/web@.service`]);
    t.is(submitted.code, 0, submitted.stderr);
    const scale = spawnFlotctl(t, ['--endpoint', both, 'scale', '--timeout', '60s', 'web=2']);
    // The leader places both instances; no agent runs them yet, so the wait goes on.
    await assertEventually(
      async () => (await placements(store)).size === 2 || Promise.reject(new Error('placing')),
      { timeoutMs: 30_000, message: `both instances placed (${scale.stderr()})` },
    );
    await kill(a);
    simulateCluster(t, store, { machines, leader: false });
    const out = await scale.waitFor(/web@1\.service launched[^]*web@2\.service launched/);
    t.regex(
      out,
      /^Scaled web@\.service to 2: started web@\{1\.\.2\}\.service; destroyed none\nUnit web@1\.service launched on \S+\nUnit web@2\.service launched on \S+\n$/,
    );
    // It ends by itself once it has reported both: a stop() here could interrupt its exit.
    t.is(await scale.waitExit(), 0, scale.stderr());
  },
);

test.serial(
  'a watch whose replica is SIGKILLed resumes at the other: the same events as that replica gives from the same revision, none lost or repeated',
  async (t) => {
    const { store, a, apiA, apiB, both } = await twoReplicas(t);
    const from = (await store.list(store.keys.prefix)).revision + 1n;
    const names = ['w1', 'w2', 'w3', 'w4', 'w5', 'w6'].map((n) => `${n}.service`);
    const dir = await unitDir(t, Object.fromEntries(names.map((n) => [n, unitText()])));
    const put = async (name: string): Promise<void> => {
      const r = await flotctl(['--endpoint', apiB, 'submit', `${dir}/${name}`]);
      t.is(r.code, 0, r.stderr);
    };
    const watch = spawnFlotctl(t, ['--endpoint', both, 'watch', `--from-revision=${from}`]);
    for (const name of names.slice(0, 3)) await put(name);
    await watch.waitFor(/w3\.service/);
    await kill(a);
    for (const name of names.slice(3)) await put(name);
    await watch.waitFor(/w6\.service/, `the watch resumed at ${apiB}`);
    t.is(await watch.stop(), 0);
    t.regex(
      watch.stderr(),
      new RegExp(
        `^watch: lost the Flotilla API at ${apiA.replace(/\./g, '\\.')} \\([a-z ]+\\); resuming from revision \\d+ at ${apiB.replace(/\./g, '\\.')}$`,
        'm',
      ),
    );
    const reference = spawnFlotctl(t, ['--endpoint', apiB, 'watch', `--from-revision=${from}`]);
    await reference.waitFor(/w6\.service/);
    await reference.stop();
    const last = /unit\s+w6\.service/;
    const seen = eventsUpTo(watch.stdout(), last);
    t.deepEqual(seen, eventsUpTo(reference.stdout(), last));
    t.is(seen.filter((l) => /unit\s+w\d\.service/.test(l)).length, 6);
  },
);

test.serial(
  'a write whose replica was SIGKILLed before it goes to the other and is applied once; a destroy, which is not idempotent, too',
  async (t) => {
    const { store, a, apiB, both, machines } = await twoReplicas(t);
    simulateCluster(t, store, { machines, leader: false });
    const dir = await unitDir(t, { 'once.service': unitText(), 'ref.service': unitText() });
    await kill(a);
    const r = await flotctl(['--endpoint', both, 'load', `${dir}/once.service`]);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /^Unit once\.service loaded/m);
    // The same command to the surviving replica alone: as many writes of the unit record.
    const ref = await flotctl(['--endpoint', apiB, 'load', `${dir}/ref.service`]);
    t.is(ref.code, 0, ref.stderr);
    const version = async (name: string): Promise<bigint | undefined> =>
      (await store.list(store.keys.unit(name))).items[0]?.version;
    t.is(await version('once.service'), await version('ref.service'));
    const d = await flotctl(['--endpoint', both, 'destroy', 'once.service']);
    t.is(d.code, 0, d.stderr);
    t.is(d.stdout, 'Unit once.service destroyed\n');
  },
);

test.serial(
  'a replica that accepts connections but never answers gets its share of --request-timeout, then the call goes to the next',
  async (t) => {
    const api = await startTestApi(t, server());
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t.teardown(() => {
      for (const socket of sockets) socket.destroy();
      silent.close();
    });
    const address = silent.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const r = await flotctl([
      '--endpoint',
      `127.0.0.1:${port},${api.endpoint}`,
      '--request-timeout=6s',
      'list-units',
    ]);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /^UNIT\s/);
    // Half of the 6 s for the silent replica, the rest for the one that answers.
    t.true(r.ms < 6_000, `${r.ms} ms`);
    const alone = await flotctl([
      '--endpoint',
      `127.0.0.1:${port}`,
      '--request-timeout=2s',
      'list-units',
    ]);
    t.is(alone.code, 1);
    t.regex(
      alone.stderr,
      /^cannot reach the Flotilla API at 127\.0\.0\.1:\d+: is a scheduler running\?/,
    );
  },
);

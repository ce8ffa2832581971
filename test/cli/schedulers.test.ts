/**
 * flotctl list-schedulers and what list-machines says about leadership, against real
 * scheduler replicas run as processes (node dist/scheduler/main.js, each with its API) over
 * a real etcd: every replica lists all of them, the leader is marked, and a SIGKILLed leader
 * leaves the list while the survivor takes over.
 */
import test from 'ava';
import type { SchedulerReplica } from '../../proto/flotilla/v1/records.js';
import { codecs } from '../../store/index.js';
import { assertEventually, etcdForFile, freePorts } from '../../testkit/index.js';
import { prefixFor, spawnReplica, testStore } from '../scheduler/harness.js';
import { flotctl, parseJson, startTestApi } from './cli-kit.js';

const server = etcdForFile(test);

test.serial(
  'list-schedulers through either replica shows both, which leads and that each is in sync; after a SIGKILL of the leader the survivor leads alone',
  async (t) => {
    const prefix = prefixFor(t);
    const store = testStore(t, server(), prefix);
    const [portA, portB] = await freePorts(2);
    const a = spawnReplica(t, server(), prefix, 'sched-a', [`--listen=127.0.0.1:${portA}`]);
    const apiA = `127.0.0.1:${portA}`;
    const apiB = `127.0.0.1:${portB}`;
    await assertEventually(
      async () => {
        const r = await flotctl(['--endpoint', apiA, 'list-schedulers', '--no-legend']);
        if (!/^sched-a\s+\S+\s+yes\s+in sync/m.test(r.stdout)) throw new Error(r.stdout + r.stderr);
      },
      { timeoutMs: 30_000, message: 'sched-a leads' },
    );
    const b = spawnReplica(t, server(), prefix, 'sched-b', [`--listen=127.0.0.1:${portB}`]);
    for (const endpoint of [apiA, apiB]) {
      const r = await assertEventually(
        async () => {
          const run = await flotctl(['--endpoint', endpoint, 'list-schedulers']);
          if (!run.stdout.includes('sched-b')) throw new Error(run.stdout + run.stderr);
          return run;
        },
        { timeoutMs: 30_000, message: `both replicas listed through ${endpoint}` },
      );
      t.is(r.code, 0, r.stderr);
      t.is(r.stderr, '');
      const lines = r.stdout.trimEnd().split('\n');
      t.regex(lines[0] ?? '', /^NAME\s+API\s+LEADER\s+SYNC\s+VERSION$/);
      t.regex(
        lines[1] ?? '',
        new RegExp(`^sched-a\\s+${apiA}\\s+yes\\s+in sync\\s+\\d+\\.\\d+\\.\\d+`),
      );
      t.regex(
        lines[2] ?? '',
        new RegExp(`^sched-b\\s+${apiB}\\s+no\\s+in sync\\s+\\d+\\.\\d+\\.\\d+`),
      );
      t.is(lines.length, 3);
    }
    const json = parseJson(
      t,
      (await flotctl(['--endpoint', apiB, '-o', 'json', 'list-schedulers'])).stdout,
    );
    t.like((json as unknown[])[0], { name: 'sched-a', api: apiA, leader: true, lagRevisions: 0 });

    a.child.kill('SIGKILL');
    t.is(await a.exited, 'SIGKILL');
    const after = await assertEventually(
      async () => {
        const r = await flotctl(['--endpoint', apiB, 'list-schedulers', '--no-legend']);
        if (r.stdout.includes('sched-a') || !/ yes /.test(r.stdout))
          throw new Error(r.stdout + r.stderr);
        return r;
      },
      { timeoutMs: 30_000, message: 'sched-b leads alone once the lease of sched-a ran out' },
    );
    t.regex(after.stdout, new RegExp(`^sched-b\\s+${apiB}\\s+yes\\s+in sync\\s+\\S+\\n$`));
    t.is(after.code, 0);
    // The record of the survivor is its own and under a lease: it vanishes with the process.
    const { items } = await store.list(store.keys.dir('scheduler'));
    t.is(items.length, 1);
    b.child.kill('SIGTERM');
    t.is(await b.exited, 0);
    t.is(
      (await store.list(store.keys.dir('scheduler'))).items.length,
      0,
      'a stopping replica revokes its record',
    );
  },
);

test('list-machines says leadership is changing, not that no scheduler leads, while replicas run and none leads', async (t) => {
  const api = await startTestApi(t, server());
  const none = await api.run(['list-machines']);
  t.is(
    none.stderr,
    'WARNING: no scheduler leads: units are neither placed nor moved until one runs (flotilla scheduler)\n',
  );
  // Two replicas advertise themselves, and no election key exists: between two terms.
  const { lease } = await api.store.grantLease(30, 'test');
  t.teardown(() => api.store.revokeLease(lease, 'test').catch(() => undefined));
  for (const id of ['00000000000000a1', '00000000000000b2']) {
    const replica: SchedulerReplica = {
      id,
      name: `sched-${id.slice(-2)}`,
      api: '',
      version: '0.0.0',
      pid: 1,
      startedUnixMs: 1n,
      lagRevisions: 0n,
      lagSinceUnixMs: 1n,
    };
    await api.store.putRecord(codecs.scheduler, api.store.keys.scheduler(id), replica, { lease });
  }
  const changing = await api.run(['list-machines']);
  t.is(changing.code, 0);
  t.is(
    changing.stderr,
    'WARNING: leadership is changing: no scheduler leads at this moment while 2 replicas run; one is elected within the election TTL and places units again (flotctl list-schedulers)\n',
  );
  const list = await api.run(['list-schedulers']);
  t.is(list.code, 1);
  t.is(
    list.stderr,
    'WARNING: no replica leads at this moment: an election is under way among 2; units are placed again once one wins\n',
  );
  t.regex(list.stdout, /^sched-a1\s+-\s+no\s+in sync\s+0\.0\.0$/m);
});

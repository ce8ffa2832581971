/**
 * Chaos: etcd. A 3-member etcd loses one member, then its raft leader (quorum gone), then all
 * come back; a 60 s outage of every member; the space quota exhausted (NOSPACE alarm), then
 * cleared. Flotilla promises an etcd fault stops nothing and moves nothing: every unit keeps
 * its machine and pid throughout, flotctl answers (or says etcd is away) within its deadline,
 * no daemon dies, and once etcd is back new work is placed again.
 */
import anyTest, { type TestFn } from 'ava';
import { sleep } from '../../testkit/index.js';
import type { E2ECluster } from '../e2e/e2e-kit.js';
import {
  chaosForFile,
  CopySampler,
  deadDaemons,
  FlotctlProbe,
  full,
  IDLE_UNIT,
  LEASE_TTL_SECONDS,
  describeRenewals,
  describeElections,
  etcdElectionsSince,
  renewalReport,
  type RenewalReport,
  settle,
  waitExactlyOnce,
} from './chaos-kit.js';

const test = anyTest as TestFn;
/** Small, so a few dozen 1 MiB writes reach it. */
const QUOTA_BYTES = 32 << 20;
const {
  serial,
  cluster: c,
  faults,
} = chaosForFile(test, {
  name: 'chetcd',
  net: 221,
  agents: 4,
  etcdFlags: [`--quota-backend-bytes=${QUOTA_BYTES}`],
});

/**
 * An agent's first renewal after etcd's leader took office, at most: etcd gives each lease its
 * TTL plus an election timeout from then (5 s here), so this leaves 1.5 s to spare. Measured
 * 0.0-1.9 s on a 2-core machine where every daemon of the cluster wakes at once.
 */
const FIRST_RENEWAL_BOUND_MS = 3_500;

const IDLE = Array.from({ length: 6 }, (_, i) => `idle@${i + 1}.service`);
const FILES = { 'idle@.service': IDLE_UNIT };

/** Machine and pid of each unit as flotctl reports it. */
async function where(cluster: E2ECluster): Promise<Map<string, string>> {
  const views = await cluster.units();
  return new Map(IDLE.map((u) => [u, `${views.get(u)?.machine}/${views.get(u)?.pid}`]));
}

/** Agents whose first renewal came later than {@link FIRST_RENEWAL_BOUND_MS}, with when. */
function lateRenewals(r: RenewalReport): string[] {
  return [...r.firstAfter]
    .filter(([, ms]) => ms > FIRST_RENEWAL_BOUND_MS)
    .map(([agent, ms]) => `${agent} after ${ms} ms`);
}

/** Starts one more instance and waits until it runs: the cluster takes new work. */
async function takesNewWork(cluster: E2ECluster, n: number): Promise<number> {
  const t0 = Date.now();
  await cluster.ok(['start', '--no-block', `idle@${n}.service`]);
  await waitExactlyOnce(cluster, [`idle@${n}.service`], `idle@${n} starts`);
  return (Date.now() - t0) / 1000;
}

serial(
  'a member, then the etcd leader, killed and all restarted: nothing stops or moves',
  async (t) => {
    t.log(`settled in ${(await settle(c(), FILES, IDLE)).toFixed(1)} s`);
    const before = await where(c());
    const faultAt = Date.now();
    const sampler = new CopySampler(c(), IDLE);
    const probe = new FlotctlProbe(c(), 'idle@1.service');

    const leader = await faults().etcdLeader();
    const follower = faults()
      .etcdNames()
      .find((n) => n !== leader.name);
    await faults().kill(follower ?? '');
    await sleep(LEASE_TTL_SECONDS * 2 * 1000);
    const withTwo = await takesNewWork(c(), 7);
    t.log(`${follower} killed: a new unit ran after ${withTwo.toFixed(1)} s on two members`);

    const second = await faults().etcdLeader();
    await faults().kill(second.name);
    await sleep(LEASE_TTL_SECONDS * 3 * 1000);
    const restartedAt = Date.now();
    await faults().startEtcd(faults().etcdNames());
    const seconds = await waitExactlyOnce(c(), [...IDLE, 'idle@7.service'], 'exactly once');
    const stats = await sampler.stop();
    const calls = await probe.stop();
    t.log(
      `quorum lost ${LEASE_TTL_SECONDS * 3} s: exactly once ${seconds.toFixed(1)} s after restart ` +
        `(${((Date.now() - restartedAt) / 1000).toFixed(1)} s to check); flotctl ${calls.calls} calls, ` +
        `slowest ${calls.slowestMs} ms; moved: ${[...stats.moved].join(', ') || 'none'}`,
    );
    const whole = await renewalReport(c(), faultAt);
    t.log(`whole case: ${describeRenewals(whole)}`);
    const elections = await etcdElectionsSince(c(), restartedAt);
    const back = elections.at(-1) ?? restartedAt;
    const returned = await renewalReport(c(), back);
    t.log(
      `${describeElections(elections, restartedAt)}; ${describeRenewals(returned, 'the last')}`,
    );
    t.deepEqual(lateRenewals(returned), [], 'every agent renewed soon after etcd was back');
    t.deepEqual(whole.lost, [], 'no agent lost its lease');
    t.deepEqual([...stats.moved], [], 'nothing moved');
    t.deepEqual(
      IDLE.filter((u) => (stats.maxCopies.get(u) ?? 0) !== 1),
      [],
      'every unit ran exactly once throughout',
    );
    const after = await where(c());
    t.deepEqual(after, before, 'same machines, same pids');
    t.deepEqual(calls.bad, [], 'flotctl always answered');
    t.deepEqual(await deadDaemons(c()), [], 'no daemon died');
    t.log(`after the restart a new unit ran in ${(await takesNewWork(c(), 8)).toFixed(1)} s`);
  },
);

full(serial)('a 60 s outage of every etcd member stops nothing and moves nothing', async (t) => {
  const units = [...IDLE, 'idle@7.service', 'idle@8.service'];
  t.log(`settled in ${(await settle(c(), FILES, units)).toFixed(1)} s`);
  const before = await where(c());
  const sampler = new CopySampler(c(), units);
  const probe = new FlotctlProbe(c(), 'idle@1.service');
  const faultAt = Date.now();
  for (const name of faults().etcdNames()) await faults().kill(name);
  await sleep(60_000);
  const returnedAt = Date.now();
  await faults().startEtcd(faults().etcdNames());
  const seconds = await waitExactlyOnce(c(), units, 'exactly once after the outage');
  const stats = await sampler.stop();
  const calls = await probe.stop();
  t.log(
    `60 s outage: exactly once ${seconds.toFixed(1)} s after etcd returned; flotctl ${calls.calls} ` +
      `calls, slowest ${calls.slowestMs} ms, ${calls.calls - calls.bad.length} clear`,
  );
  const elections = await etcdElectionsSince(c(), returnedAt);
  const back = elections.at(-1) ?? returnedAt;
  const returned = await renewalReport(c(), back);
  t.log(`${describeElections(elections, returnedAt)}; ${describeRenewals(returned, 'the last')}`);
  t.deepEqual(lateRenewals(returned), [], 'every agent renewed soon after etcd was back');
  t.deepEqual((await renewalReport(c(), faultAt)).lost, [], 'no agent lost its lease');
  t.deepEqual([...stats.moved], [], 'nothing moved');
  t.deepEqual(
    units.filter((u) => (stats.maxCopies.get(u) ?? 0) !== 1),
    [],
    'every unit ran exactly once throughout',
  );
  t.deepEqual(await where(c()), before, 'same machines, same pids');
  t.deepEqual(calls.bad, [], 'flotctl always answered');
  t.deepEqual(await deadDaemons(c()), [], 'no daemon died');
  t.log(`after the outage a new unit ran in ${(await takesNewWork(c(), 9)).toFixed(1)} s`);
});

serial(
  'etcd out of space (NOSPACE) stops nothing; writes fail clearly, then work once cleared',
  async (t) => {
    t.log(`settled in ${(await settle(c(), FILES, IDLE)).toFixed(1)} s`);
    const before = await where(c());
    const sampler = new CopySampler(c(), IDLE);
    const written = await faults().fillQuota(64);
    t.log(`NOSPACE after ${written} MiB (quota ${QUOTA_BYTES >> 20} MiB)`);

    const submit = await c().flotctl(['start', '--no-block', 'idle@10.service']);
    t.not(submit.code, 0, 'a write is refused while etcd is full');
    t.log(`flotctl start while full: exit ${submit.code}: ${submit.stderr.trim().slice(0, 300)}`);
    t.true(submit.stderr.length > 0 && submit.stderr.length < 4096, 'with a bounded message');
    t.regex(submit.stderr, /out of space/, 'that says etcd is out of space');
    t.notRegex(submit.stderr, /internal/i, 'not an internal error');
    await sleep(LEASE_TTL_SECONDS * 3 * 1000);
    const list = await c().flotctl(['list-units']);
    t.is(list.code, 0, `reads still work: ${list.stderr}`);
    t.deepEqual(await where(c()), before, 'nothing stopped or moved while full');

    await faults().clearNoSpace();
    const seconds = await takesNewWork(c(), 10);
    const stats = await sampler.stop();
    t.log(`once cleared, a new unit ran after ${seconds.toFixed(1)} s`);
    t.deepEqual([...stats.moved], [], 'nothing moved');
    t.deepEqual(await deadDaemons(c()), [], 'no daemon died');
    await waitExactlyOnce(c(), IDLE, 'exactly once after NOSPACE');
  },
);

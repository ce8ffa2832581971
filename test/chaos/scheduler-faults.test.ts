/**
 * Chaos: schedulers. The leader cut off from etcd (iptables) while its API keeps serving; the
 * leader SIGSTOPped past its election TTL and resumed; an API replica that is also the leader
 * SIGKILLed in the middle of a large scale and of a large submit. Flotilla promises another
 * replica takes over within the election TTL and places new work, the deposed leader writes
 * nothing (no unit runs twice, nothing running moves), a large request is either finished by
 * a retry or was all-or-nothing per transaction, and flotctl always answers.
 */
import anyTest, { type TestFn } from 'ava';
import { restartProcess } from '../../deploy/cluster/index.js';
import { assertEventually, sleep, storedInstances } from '../../testkit/index.js';
import type { E2ECluster } from '../e2e/e2e-kit.js';
import {
  chaosForFile,
  CopySampler,
  deadDaemons,
  FlotctlProbe,
  IDLE_UNIT,
  startUnits,
  waitExactlyOnce,
} from './chaos-kit.js';
import { etcdctl } from './faults.js';

const test = anyTest as TestFn;
const {
  serial,
  cluster: c,
  faults,
} = chaosForFile(test, {
  name: 'chsched',
  net: 222,
  agents: 4,
});

const IDLE = Array.from({ length: 6 }, (_, i) => `idle@${i + 1}.service`);

let started: Promise<void> | undefined;
function ready(): Promise<void> {
  started ??= startUnits(c(), { 'idle@.service': IDLE_UNIT }, IDLE);
  return started;
}

/** The leading scheduler's process name (scheduler-<i>) and its API address. */
async function leader(cluster: E2ECluster): Promise<{ name: string; api: string; id: string }> {
  const info = await assertEventually(async () => (await cluster.leader()) ?? false, {
    timeoutMs: 60_000,
    message: 'a leader is elected',
  });
  const i = Number(/-scheduler-(\d+)$/.exec(info.name)?.[1] ?? '0');
  return { name: `scheduler-${i}`, api: cluster.record.apiAddresses[i - 1] ?? '', id: info.name };
}

/** Another replica's API than `api`. */
function otherApi(cluster: E2ECluster, api: string): string {
  return cluster.record.apiAddresses.find((a) => a !== api) ?? '';
}

async function where(cluster: E2ECluster, units: readonly string[]) {
  const views = await cluster.units();
  return new Map(units.map((u) => [u, `${views.get(u)?.machine}/${views.get(u)?.pid}`]));
}

/** Seconds until a scheduler other than `was` leads. */
async function successor(cluster: E2ECluster, was: string): Promise<number> {
  const t0 = Date.now();
  await assertEventually(async () => ((await cluster.leader())?.name ?? was) !== was, {
    timeoutMs: 60_000,
    message: 'another scheduler leads',
  });
  return (Date.now() - t0) / 1000;
}

for (const fault of ['cut off from etcd', 'SIGSTOPped'] as const) {
  serial(
    `the leader ${fault} past its election TTL: a successor places, nothing moves`,
    async (t) => {
      await ready();
      const units = [...IDLE];
      await waitExactlyOnce(c(), units, 'settled before');
      const before = await where(c(), units);
      const old = await leader(c());
      const sampler = new CopySampler(c(), units);
      // flotctl keeps asking the deposed leader's API: it must answer or fail clearly.
      c().useApi(old.api);
      const probe = new FlotctlProbe(c(), 'idle@1.service');
      if (fault === 'SIGSTOPped') await faults().pause(old.name);
      else await faults().cutFromEtcd(old.name);
      const took = await successor(c(), old.id);
      const calls = await probe.stop();

      c().useApi(otherApi(c(), old.api));
      const n = fault === 'SIGSTOPped' ? 20 : 21;
      await c().ok(['start', '--no-block', `idle@${n}.service`]);
      units.push(`idle@${n}.service`);
      const placed = await waitExactlyOnce(c(), units, 'the successor places new work');
      await sleep(3000);
      if (fault === 'SIGSTOPped') await faults().resume(old.name);
      else await faults().healFromEtcd(old.name);
      await sleep(5000);
      const seconds = await waitExactlyOnce(
        c(),
        units,
        'exactly once after the old leader returns',
      );
      const stats = await sampler.stop();
      t.log(
        `leader ${fault}: successor after ${took.toFixed(1)} s, new unit running ${placed.toFixed(1)} s later; ` +
          `exactly once ${seconds.toFixed(1)} s after the old leader returned; flotctl to the old ` +
          `leader: ${calls.calls} calls, slowest ${calls.slowestMs} ms, ` +
          `${calls.calls - calls.bad.length} ok or clear`,
      );
      t.deepEqual(calls.bad, [], "flotctl to the old leader's API always answered");
      t.deepEqual([...stats.moved], [], 'nothing moved');
      t.deepEqual(
        units.filter((u) => (stats.maxCopies.get(u) ?? 0) > 1),
        [],
        'nothing ran twice',
      );
      const after = await where(c(), IDLE);
      t.deepEqual(after, new Map([...before].filter(([u]) => IDLE.includes(u))), 'same pids');
      t.deepEqual(await deadDaemons(c()), [], 'no daemon died');
    },
  );
}

/** Number of keys under `units/<prefix>` in etcd now. */
async function unitCount(cluster: E2ECluster, prefix: string): Promise<number> {
  const res = await etcdctl(cluster, [
    'get',
    '--prefix',
    '--keys-only',
    '--limit=1',
    '--write-out=json',
    `${cluster.record.prefix}units/${prefix}`,
  ]);
  if (res.code !== 0) throw new Error(`etcdctl get: ${res.stderr}`);
  // The count is of every key in the range, whatever the limit; etcd leaves a zero out.
  return Number(/"count":(\d+)/.exec(res.stdout)?.[1] ?? '0');
}

/** Starts again any scheduler an earlier (failed) test left dead; resolves with their names. */
async function reviveSchedulers(cluster: E2ECluster): Promise<string[]> {
  const dead = (await deadDaemons(cluster)).filter((n) => n.startsWith('scheduler-'));
  for (const name of dead) await restartProcess(cluster.dir, name);
  await cluster.refresh();
  return dead;
}

/** The API of a scheduler that runs now, other than `name`. */
async function liveApi(cluster: E2ECluster, name: string): Promise<string> {
  const dead = await deadDaemons(cluster);
  const i = cluster.record.processes
    .filter((p) => p.role === 'scheduler' && p.name !== name && !dead.includes(p.name))
    .map((p) => Number(p.name.split('-')[1]))[0];
  const api = cluster.record.apiAddresses[(i ?? 0) - 1];
  if (api === undefined) throw new Error(`no scheduler but ${name} runs`);
  return api;
}

/** Instances of `template` that etcd holds: the numbers its count record holds and records. */
async function instanceCount(cluster: E2ECluster, template: string): Promise<number> {
  const store = cluster.openStore();
  try {
    return await storedInstances(store, template);
  } finally {
    store.close();
  }
}

/** Kills `name` as soon as `written()` grows past `already`, or when `done` settles first. */
async function killOnceWritten(
  cluster: E2ECluster,
  name: string,
  written: () => Promise<number>,
  done: Promise<unknown>,
  already = 0,
) {
  let finished = false;
  void done.then(() => (finished = true));
  await assertEventually(async () => finished || (await written()) > already, {
    timeoutMs: 60_000,
    intervalMs: 20,
    message: 'the request starts writing',
  });
  const late = finished;
  await faults().kill(name);
  return late;
}

/** Parks wherever it is placed: no machine has role=nowhere, so instances stay unplaced. */
const PARKED = 'parked@.service';
const PARKED_UNIT = `${IDLE_UNIT}
[X-Fleet]
MachineMetadata=role=nowhere
`;

serial('a scheduler SIGKILLed in the middle of a large scale: a retry finishes it', async (t) => {
  await ready();
  t.log(`revived: ${(await reviveSchedulers(c())).join(', ') || 'none'}`);
  const before = await where(c(), IDLE);
  await c().ok(['submit', await c().unitFile('parked@.service', PARKED_UNIT)]);
  const old = await leader(c());
  c().useApi(old.api);
  const scale = c().flotctl(['scale', '--no-block', '--allow-pending', 'parked@.service=3000']);
  // A scale writes one count record (its instances at once), so the kill lands before or after.
  const late = await killOnceWritten(c(), old.name, () => instanceCount(c(), PARKED), scale);
  const first = await scale;
  const written = await instanceCount(c(), PARKED);
  t.log(
    `killed ${late ? 'after' : 'during'} the scale, ${written} of 3000 written: exit ${first.code}: ` +
      `${(first.stderr || first.stdout).trim().slice(0, 200)}`,
  );
  t.true(first.code === 0 || first.stderr.trim().length > 0, 'flotctl ended with a clear answer');

  c().useApi(await liveApi(c(), old.name));
  const t0 = Date.now();
  await c().ok(['scale', '--no-block', '--allow-pending', 'parked@.service=3000']);
  t.is(await instanceCount(c(), PARKED), 3000, 'a retry reaches the count exactly');
  await restartProcess(c().dir, old.name);
  await c().refresh();
  t.deepEqual(await deadDaemons(c()), [], 'every daemon runs again');
  await c().ok(['scale', '--no-block', 'parked@.service=0']);
  t.is(await instanceCount(c(), PARKED), 0, 'no instance is left');
  t.is(await unitCount(c(), 'parked@'), 1, 'the template is left');
  t.log(`retry, restart and scale to 0 in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  t.deepEqual(await where(c(), IDLE), before, 'running units untouched');
});

serial(
  'a scheduler SIGKILLed in the middle of a large submit: each batch all or nothing',
  async (t) => {
    await ready();
    const old = await leader(c());
    const files: string[] = [];
    for (let i = 1; i <= 300; i++) files.push(await c().unitFile(`batch${i}.service`, IDLE_UNIT));
    c().useApi(old.api);
    const submit = c().flotctl(['submit', ...files]);
    const late = await killOnceWritten(c(), old.name, () => unitCount(c(), 'batch'), submit);
    const first = await submit;
    const present = await unitCount(c(), 'batch');
    t.log(
      `killed ${late ? 'after' : 'during'} the submit, ${present} of 300 written: exit ${first.code}: ` +
        `${(first.stderr || first.stdout).trim().slice(0, 200)}`,
    );
    t.true(first.code === 0 || first.stderr.trim().length > 0, 'flotctl ended with a clear answer');
    t.true(present % 128 === 0 || present === 300, `whole batches of 128 only (${present})`);

    c().useApi(otherApi(c(), old.api));
    await c().ok(['submit', ...files]);
    t.is(await unitCount(c(), 'batch'), 300, 'a retry submits the rest');
    await c().ok(['destroy', ...files.map((f) => f.split('/').pop() ?? '')]);
    await restartProcess(c().dir, old.name);
    await c().refresh();
    t.deepEqual(await deadDaemons(c()), [], 'every daemon runs again');
  },
);

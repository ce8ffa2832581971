/**
 * Failover benchmark, against a real etcd with real scheduler processes and simulated
 * machines (machine records under leases, no agents):
 *
 * 1. machine lease expiry -> new placement: a machine dies right after renewing its lease;
 *    measured from that last renewal until its unit is placed elsewhere (goal: machine TTL +
 *    2 s), and from etcd's deletion of its record (the scheduler's own share).
 * 2. leader SIGKILL -> first placement by the successor: the leader is killed and a unit is
 *    submitted at once; measured until the successor places it (goal: election TTL + 2 s).
 *
 * p50 and max over 20 runs each (`--runs N`). The machine TTL is 3 s (`--machine-ttl S`) to
 * keep the runs short; the goal scales with it. Prints a table, then one JSON line.
 *
 * Run with `npm run bench:failover` (build, then `node dist/bench/failover.js`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Placement } from '../proto/flotilla/v1/records.js';
import { codecs, openStore, Presence, WatchCache, type Store } from '../store/index.js';
import { parseUnit } from '../unit/index.js';
import {
  makeMachine,
  startEtcd,
  uniquePrefix,
  unitText,
  type EtcdServer,
} from '../testkit/index.js';

const MAIN = fileURLToPath(new URL('../scheduler/main.js', import.meta.url));
const ELECTION_TTL_S = 5;
const STABLE_MACHINES = 9;

/** Placement puts as they happen, with the wall time this process saw them. */
class PlacementClock {
  private readonly waiters: {
    unit: string;
    ok: (p: Placement) => boolean;
    resolve: (at: number) => void;
  }[] = [];
  private constructor(readonly cache: WatchCache<Placement>) {}

  static async start(store: Store): Promise<PlacementClock> {
    const cache = new WatchCache(store, {
      prefix: store.keys.dir('placement'),
      codec: codecs.placement,
    });
    const clock = new PlacementClock(cache);
    cache.on((e) => {
      if (e.type !== 'put') return;
      const at = Date.now();
      for (const w of [...clock.waiters]) {
        if (w.unit === e.value.unit && w.ok(e.value)) {
          clock.waiters.splice(clock.waiters.indexOf(w), 1);
          w.resolve(at);
        }
      }
    });
    await cache.ready();
    return clock;
  }

  /** Resolves with the time a placement of `unit` accepted by `ok` is written. */
  next(unit: string, ok: (p: Placement) => boolean, timeoutMs = 60_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${unit} not placed in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push({ unit, ok, resolve: (at) => (clearTimeout(timer), resolve(at)) });
    });
  }
}

interface Replica {
  readonly name: string;
  readonly child: ChildProcess;
}

const children = new Set<ChildProcess>();

async function spawnReplica(
  etcd: EtcdServer,
  prefix: string,
  name: string,
  logDir: string,
): Promise<Replica> {
  const log = createWriteStream(join(logDir, `${name}.log`));
  const child = spawn(
    process.execPath,
    [
      MAIN,
      `--etcd-endpoints=${etcd.endpoint}`,
      `--prefix=${prefix}`,
      '--listen=none',
      `--name=${name}`,
      `--election-ttl=${ELECTION_TTL_S}s`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr?.pipe(log);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return { name, child };
}

async function submit(
  store: Store,
  name: string,
  xfleet: Record<string, string> = {},
): Promise<void> {
  const file = unitText({ xfleet });
  await store.putRecord(codecs.unit, store.keys.unit(name), {
    name,
    file,
    hash: parseUnit(name, file).hash,
    desiredState: 'launched',
  });
}

async function machine(
  store: Store,
  metadata: Record<string, string>,
  ttlSeconds: number,
): Promise<Presence> {
  const record = makeMachine({ metadata });
  const presence = new Presence(store, {
    key: store.keys.machine(record.id),
    value: codecs.machine.encode(record),
    ttlSeconds,
  });
  await presence.start();
  return presence;
}

async function until(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Scenario 1: per run, a fresh machine gets a unit, dies, and the unit moves to a spare. */
async function leaseExpiry(etcd: EtcdServer, runs: number, ttlS: number, logDir: string) {
  const store = openStore({ endpoints: etcd.endpoint, prefix: uniquePrefix('bench-lease') });
  const clock = await PlacementClock.start(store);
  const stable = await Promise.all(
    Array.from({ length: STABLE_MACHINES }, () => machine(store, {}, ttlS)),
  );
  // The spare always carries a unit, so a fresh (empty) victim ranks first for each new unit.
  const spare = await machine(store, { pool: 'bench', role: 'spare' }, ttlS);
  await submit(store, 'anchor.service', { MachineMetadata: 'role=spare' });
  const deletions = new Map<string, number>();
  const machines = new WatchCache(store, {
    prefix: store.keys.dir('machine'),
    codec: codecs.machine,
  });
  machines.on((e) => (e.type === 'delete' ? deletions.set(e.key, Date.now()) : undefined));
  await machines.ready();
  const replica = await spawnReplica(etcd, store.keys.prefix, 'lease-bench', logDir);
  const total: number[] = [];
  const reaction: number[] = [];
  for (let i = 0; i < runs; i++) {
    const victim = await machine(store, { pool: 'bench' }, ttlS);
    const unit = `moved-${i}.service`;
    const victimId = victim.key.slice(store.keys.dir('machine').length);
    const placed = clock.next(unit, (p) => p.machine === victimId);
    await submit(store, unit, { MachineMetadata: 'pool=bench' });
    await placed;
    const moved = clock.next(unit, (p) => p.machine !== victimId);
    await victim.close({ revoke: false }); // stops renewing: dead since its last renewal
    const diedAt = victim.lastRenewedAt ?? Date.now();
    const at = await moved;
    total.push(at - diedAt);
    reaction.push(at - (deletions.get(victim.key) ?? Number.NaN));
    process.stderr.write(`  lease run ${i + 1}/${runs}: ${at - diedAt} ms\n`);
  }
  replica.child.kill('SIGTERM');
  for (const p of [...stable, spare]) await p.close();
  await machines.close();
  await clock.cache.close();
  store.close();
  return { total, reaction };
}

/** Scenario 2: per run, SIGKILL the leader, submit a unit at once, time the successor's placement. */
async function leaderKill(etcd: EtcdServer, runs: number, logDir: string) {
  const store = openStore({ endpoints: etcd.endpoint, prefix: uniquePrefix('bench-leader') });
  const clock = await PlacementClock.start(store);
  const machines = await Promise.all([1, 2, 3].map(() => machine(store, {}, 10)));
  const replicas = new Map<string, Replica>();
  const candidates = async (): Promise<number> =>
    (await store.list(store.keys.election())).items.length;
  const leaderName = async (): Promise<string | undefined> => {
    const items = (await store.list(store.keys.election())).items.sort((a, b) =>
      a.createRevision < b.createRevision ? -1 : 1,
    );
    const v = items[0]?.value.toString('utf8');
    return v === undefined ? undefined : (JSON.parse(v) as { name: string }).name;
  };
  let serial = 0;
  const addReplica = async (): Promise<void> => {
    const r = await spawnReplica(etcd, store.keys.prefix, `leader-bench-${serial++}`, logDir);
    replicas.set(r.name, r);
  };
  await addReplica();
  await until('a first leader', async () => (await leaderName()) !== undefined);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    await addReplica();
    await until('two candidates', async () => (await candidates()) === 2);
    const name = await leaderName();
    const leader = name === undefined ? undefined : replicas.get(name);
    if (leader === undefined) throw new Error(`leader ${name} is not one of ours`);
    const unit = `after-kill-${i}.service`;
    const placed = clock.next(unit, () => true);
    const killedAt = Date.now();
    leader.child.kill('SIGKILL');
    replicas.delete(leader.name);
    await submit(store, unit);
    const at = await placed;
    times.push(at - killedAt);
    process.stderr.write(`  leader run ${i + 1}/${runs}: ${at - killedAt} ms\n`);
    await until('the old key to expire', async () => (await candidates()) === 1);
  }
  for (const m of machines) await m.close();
  await clock.cache.close();
  store.close();
  return times;
}

function stats(xs: readonly number[]): { p50: number; max: number } {
  const sorted = [...xs].sort((a, b) => a - b);
  return {
    p50: sorted[Math.floor((sorted.length - 1) / 2)] ?? 0,
    max: sorted[sorted.length - 1] ?? 0,
  };
}

const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { runs: { type: 'string' }, 'machine-ttl': { type: 'string' } },
  });
  const runs = Number(values.runs ?? 20);
  const ttlS = Number(values['machine-ttl'] ?? 3);
  const logDir = await mkdtemp(join(tmpdir(), 'flotilla-bench-failover-'));
  const etcd = await startEtcd();
  try {
    process.stderr.write(`scheduler logs in ${logDir} (removed after a successful run)\n`);
    const lease = await leaseExpiry(etcd, runs, ttlS, logDir);
    const kill = await leaderKill(etcd, runs, logDir);
    const rows = [
      ['machine death -> unit placed elsewhere', (ttlS + 2) * 1000, stats(lease.total)],
      ['  of which lease deleted -> placed', undefined, stats(lease.reaction)],
      ['leader SIGKILL -> successor places', (ELECTION_TTL_S + 2) * 1000, stats(kill)],
    ] as const;
    console.log(`machine TTL ${ttlS} s, election TTL ${ELECTION_TTL_S} s, ${runs} runs each\n`);
    console.log(
      `${'measure'.padEnd(42)}${'goal'.padStart(9)}${'p50'.padStart(9)}${'max'.padStart(9)}`,
    );
    for (const [label, goal, st] of rows) {
      const mark = goal === undefined ? '' : st.max <= goal ? '  ok' : '  OVER GOAL';
      console.log(
        `${label.padEnd(42)}${(goal === undefined ? '' : s(goal)).padStart(9)}${s(st.p50).padStart(9)}${s(st.max).padStart(9)}${mark}`,
      );
    }
    console.log(
      JSON.stringify({
        runs,
        machineTtlS: ttlS,
        electionTtlS: ELECTION_TTL_S,
        leaseExpiryToPlacementMs: { ...stats(lease.total), goal: (ttlS + 2) * 1000 },
        leaseDeletedToPlacementMs: stats(lease.reaction),
        leaderKillToPlacementMs: { ...stats(kill), goal: (ELECTION_TTL_S + 2) * 1000 },
      }),
    );
    await rm(logDir, { recursive: true, force: true });
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await etcd.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    for (const c of children) c.kill('SIGKILL');
    console.error(err);
    process.exit(1);
  },
);

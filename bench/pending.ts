/**
 * Pending benchmark: what 100,000 instances that cannot be placed cost the leader. A real etcd,
 * one scheduler replica (API off), 3 machines and the quickstart's `api@.service`
 * (MaxPerMachine=2: 6 can run). The instance records are written straight into etcd (the
 * scale itself is not measured here), then the benchmark waits until the leader has settled
 * and reports:
 * - how long the leader took to settle after the last instance record was written;
 * - the keys under unscheduled/ (one per pending instance before issue 26, one per template
 *   after);
 * - the leader's steady pass (view + plan + decide, no writes): each of 5 passes is started
 *   by a change of a machine's metadata, which every pass must look at.
 * Ends with one JSON line. `--instances N` (default 100,000).
 *
 * Run with `npm run bench:pending`.
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startScheduler } from '../scheduler/main.js';
import type { PassReport } from '../scheduler/leader/engine.js';
import { SCHEDULER_DEFAULTS } from '../scheduler/options.js';
import { pool } from '../lib/pool.js';
import { atomicTxn, codecs, MAX_TXN_OPS, openStore, type Store } from '../store/index.js';
import { parseUnit } from '../unit/index.js';
import { makeMachine, sleep, startEtcd, uniquePrefix, unitText } from '../testkit/index.js';

const TEMPLATE = 'api@.service';

async function writeInstances(store: Store, count: number): Promise<void> {
  const file = unitText({ xfleet: { MaxPerMachine: '2' } });
  const hash = parseUnit('api@1.service', file).hash;
  await store.putRecord(codecs.unit, store.keys.unit(TEMPLATE), {
    name: TEMPLATE,
    file,
    hash: parseUnit(TEMPLATE, file).hash,
    desiredState: 'inactive',
  });
  const chunks = Math.ceil(count / MAX_TXN_OPS);
  await pool(chunks, 16, async (c) => {
    await atomicTxn(store, (b) => {
      for (let i = c * MAX_TXN_OPS + 1; i <= Math.min(count, (c + 1) * MAX_TXN_OPS); i++) {
        const name = `api@${i}.service`;
        b.put(
          store.keys.unit(name),
          codecs.unit.encode({ name, file, hash, desiredState: 'launched' }),
        );
      }
    });
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { instances: { type: 'string', default: '100000' } } });
  const instances = Number(values.instances);
  const etcd = await startEtcd({ extraArgs: ['--quota-backend-bytes=8589934592'] });
  const prefix = uniquePrefix('bench-pending');
  const store = openStore({ endpoints: etcd.endpoint, prefix });
  const passes: PassReport[] = [];
  const scheduler = await startScheduler(
    {
      endpoints: [etcd.endpoint],
      prefix,
      listen: undefined,
      electionTtlSeconds: 5,
      logLevel: 'silent',
      name: 'bench',
      rescheduleRate: SCHEDULER_DEFAULTS.rescheduleRate,
      lossWindowMs: SCHEDULER_DEFAULTS.lossWindowMs,
      pauseTimeoutMs: SCHEDULER_DEFAULTS.pauseTimeoutMs,
      lossSettleMs: SCHEDULER_DEFAULTS.lossSettleMs,
      tickMs: 1_000,
      maxInstances: instances,
      etcdQuotaBytes: 8 * 1024 ** 3,
      etcdQuotaShare: SCHEDULER_DEFAULTS.etcdQuotaShare,
    },
    pino({ level: 'silent' }),
    { onPass: (r) => passes.push(r) },
  );
  try {
    const machines = [1, 2, 3].map(() => makeMachine());
    for (const m of machines) await store.putRecord(codecs.machine, store.keys.machine(m.id), m);
    const wrote = performance.now();
    await writeInstances(store, instances);
    const written = performance.now();
    // Settled: the leader has passed twice in a row without writing anything.
    let quiet = 0;
    let seen = passes.length;
    while (quiet < 2) {
      await sleep(500);
      const fresh = passes.slice(seen);
      seen = passes.length;
      if (fresh.length === 0) continue;
      quiet = fresh.every((p) => p.placed === 0 && p.removed === 0) ? quiet + 1 : 0;
    }
    const settled = performance.now();
    const pending = await store.count(store.keys.dir('unscheduled'));
    const placed = await store.count(store.keys.dir('placement'));
    const steady: number[] = [];
    for (let i = 0; i < 5; i++) {
      const before = passes.length;
      const m = machines[0];
      if (m === undefined) break;
      await store.putRecord(codecs['machine-metadata'], store.keys.machineMetadata(m.id), {
        machine: m.id,
        metadata: { round: String(i) },
        drained: false,
      });
      while (passes.length === before) await sleep(20);
      steady.push((passes[passes.length - 1]?.planSeconds ?? 0) * 1000);
    }
    const median = [...steady].sort((a, b) => a - b)[Math.floor(steady.length / 2)] ?? 0;
    const fmt = (ms: number): string => `${Math.round(ms).toLocaleString('en-US')} ms`;
    console.log(`${instances.toLocaleString('en-US')} instances of ${TEMPLATE}, 3 machines:`);
    console.log(
      `  written in ${fmt(written - wrote)}; leader settled ${fmt(settled - written)} later`,
    );
    console.log(
      `  ${placed} placements, ${pending.toLocaleString('en-US')} keys under unscheduled/`,
    );
    console.log(`  steady pass (view + plan + decide): ${steady.map(fmt).join(', ')}`);
    console.log(
      JSON.stringify({
        instances,
        unscheduledKeys: pending,
        settleMs: Math.round(settled - written),
        steadyPassMs: Math.round(median),
        heapMiB: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
      }),
    );
  } finally {
    await scheduler.close();
    store.close();
    await etcd.stop();
  }
}

await main();

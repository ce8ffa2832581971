/**
 * Console benchmark (issue 21): the web console in headless chromium against a large
 * simulated cluster through the real path: a real etcd, a real scheduler process serving the
 * gRPC API and the HTTP listener (`--http-listen`), `flotctl scale` to place the units, the
 * simulated machines and agents of bench:scale (bench/sim-machines.ts, sim-agents.ts), and
 * Debian's chromium driven by playwright-core. Measured, each against its target:
 *
 * 1. load: from navigating to /ui/ until the map's first frame after the full listing;
 * 2. a change in etcd -> drawn on the open map: state records rewritten at `--rate` changes
 *    a second for `--seconds` (each a different unit), p50/p99/max from the write to the
 *    frame that drew it (the page's and this process's clocks are the same machine's);
 * 3. the browser's JS heap (after a GC) with the map open, then with the units table too;
 * 4. the scheduler's CPU over 20 s, idle, without a page and then with one open console;
 * 5. stop a unit: from the click on Stop to the API's answer (median and max of 5).
 *
 * Flags: `--machines` (5000), `--count` (100000), `--rate` (100), `--seconds` (10), `--keep`.
 * Prints a table, then one JSON line. `npm run bench:console`; try it small first:
 * `npm run bench:console -- --machines 200 --count 4000`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser } from 'playwright-core';
import type { UnitState } from '../proto/flotilla/v1/records.js';
import { atomicTxn, codecs, LeasePool, openStore, type Store } from '../store/index.js';
import { freePorts, startEtcd, uniquePrefix, type EtcdServer } from '../testkit/index.js';
import {
  drawnTimes,
  goRoute,
  heapBytes,
  launchChromium,
  recordDrawn,
  waitListed,
  waitMapDrawn,
} from '../testkit/console-page.js';
import { SimAgents } from './sim-agents.js';
import {
  machineLeasePool,
  makeMachines,
  registerMachines,
  startLogsStandIn,
  type LogsStandIn,
} from './sim-machines.js';
import {
  cpuSeconds,
  failureOf,
  flotctl,
  Processes,
  startReplica,
  waitUntil,
} from './scale-procs.js';
import { TEMPLATE, TEMPLATE_TEXT } from './scale-steps.js';

const progress = (text: string): boolean =>
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`);

interface Options {
  readonly machines: number;
  readonly count: number;
  readonly rate: number;
  readonly seconds: number;
  readonly keep: boolean;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      machines: { type: 'string' },
      count: { type: 'string' },
      rate: { type: 'string' },
      seconds: { type: 'string' },
      keep: { type: 'boolean' },
    },
  });
  const int = (raw: string | undefined, fallback: number, what: string): number => {
    const n = raw === undefined ? fallback : Number(raw);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${what}: expected a positive number`);
    return n;
  };
  return {
    machines: int(values.machines, 5_000, 'machines'),
    count: int(values.count, 100_000, 'count'),
    rate: int(values.rate, 100, 'rate'),
    seconds: int(values.seconds, 10, 'seconds'),
    keep: values.keep === true,
  };
}

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
}

async function main(): Promise<void> {
  const opts = parseOptions();
  const workDir = await mkdtemp(join(tmpdir(), 'flotilla-bench-console-'));
  const procs = new Processes(workDir);
  let etcd: EtcdServer | undefined;
  let store: Store | undefined;
  let leases: LeasePool | undefined;
  let logs: LogsStandIn | undefined;
  let agents: SimAgents | undefined;
  let browser: Browser | undefined;
  const figures: Record<string, number | string> = {};
  try {
    etcd = await startEtcd({ extraArgs: [`--quota-backend-bytes=${8 * 1024 ** 3}`] });
    store = openStore({ endpoints: etcd.endpoint, prefix: uniquePrefix('console') });
    logs = await startLogsStandIn();
    const machines = makeMachines(opts.machines, logs.endpoint);
    const byId = new Map(machines.map((m) => [m.id, m]));
    leases = machineLeasePool(store, machines.length, 10);
    agents = await SimAgents.start(store, {
      leaseOf: (id) => byId.get(id)?.lease,
      countedPrefix: 'web@',
    });
    await registerMachines(store, leases, machines);
    progress(`registered ${opts.machines} machines`);
    const [apiPort, httpPort] = await freePorts(2);
    const replica = await startReplica(procs, {
      etcdEndpoint: etcd.endpoint,
      prefix: store.keys.prefix,
      name: 'sched-a',
      port: apiPort ?? 0,
      electionTtlS: 5,
      rescheduleRate: undefined,
      maxInstances: Math.max(opts.count, 10_000),
      extraArgs: [`--http-listen=127.0.0.1:${httpPort}`],
    });
    const file = join(workDir, TEMPLATE);
    await writeFile(file, TEMPLATE_TEXT);
    const timeoutMs = 900_000;
    const sub = await flotctl(procs, replica.api, ['submit', file], { timeoutMs });
    if (sub.code !== 0) throw new Error(`submit: ${failureOf(sub)}`);
    const t0 = Date.now();
    const scale = flotctl(
      procs,
      replica.api,
      ['scale', '--timeout', '900s', `${TEMPLATE}=${opts.count}`],
      { timeoutMs },
    );
    const a = agents;
    const up = await waitUntil(() => a.reported >= opts.count, Date.now() + timeoutMs);
    if (!('at' in up)) throw new Error(`${a.reported} of ${opts.count} active: ${up.reason}`);
    await scale;
    progress(`${opts.count} units active in ${Date.now() - t0} ms`);
    await sleep(3_000);

    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    const url = `http://127.0.0.1:${httpPort}/ui/`;

    // 1. Load to the map drawn (twice: a cold browser cache, then a warm one).
    for (const run of ['loadColdMs', 'loadWarmMs']) {
      await page.goto(url);
      figures[run] = await waitMapDrawn(page);
      progress(`${run} ${Math.round(figures[run] as number)} ms`);
    }
    figures.heapMapBytes = await heapBytes(page);

    // 2. Changes in etcd -> drawn.
    await recordDrawn(page);
    const written = new Map<string, number>();
    const units = [...Array(opts.count).keys()].map((i) => `web@${i + 1}.service`);
    const total = opts.rate * opts.seconds;
    const k = store.keys;
    const s = store;
    const perTick = Math.max(1, Math.round(opts.rate / 10));
    const tStart = Date.now();
    for (let i = 0; i < total;) {
      const due = tStart + (i / opts.rate) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
      const batch: Promise<void>[] = [];
      for (let j = 0; j < perTick && i < total; j += 1, i += 1) {
        const unit = units[(i * 7919) % units.length] as string;
        const machine = a.machineOf(unit);
        const lease = machine === undefined ? undefined : byId.get(machine)?.lease;
        if (machine === undefined || lease === undefined) continue;
        const state: UnitState = {
          ...EMPTY_STATE,
          name: unit,
          machine,
          loadState: 'loaded',
          activeState: 'active',
          subState: 'running',
          health: 'unhealthy',
          healthFailures: 3,
          since: BigInt(Date.now()),
        };
        written.set(unit, Date.now());
        batch.push(
          atomicTxn(s, (b) =>
            b.putRecord(codecs.state, k.state(machine, unit), state, { lease }),
          ).then(() => undefined),
        );
      }
      await Promise.all(batch);
    }
    await sleep(3_000);
    const drawn = await drawnTimes(page);
    const lat: number[] = [];
    let missed = 0;
    for (const [unit, at] of written) {
      const d = drawn[unit];
      if (d === undefined) missed += 1;
      else lat.push(d - at);
    }
    figures.changes = written.size;
    figures.changesMissed = missed;
    figures.changeP50Ms = quantile(lat, 0.5);
    figures.changeP99Ms = quantile(lat, 0.99);
    figures.changeMaxMs = quantile(lat, 1);

    // 3. Heap with the units table open too.
    await goRoute(page, 'units');
    await page.waitForSelector('[data-unit]', { timeout: 60_000 });
    figures.heapMapAndTableBytes = await heapBytes(page);

    // 4. Scheduler CPU, idle: with the console open on the map, then with no page.
    await goRoute(page, '');
    await sleep(5_000);
    const cpu = async (): Promise<number> => {
      const c0 = cpuSeconds(replica.pid) ?? NaN;
      const w0 = Date.now();
      await sleep(20_000);
      return (((cpuSeconds(replica.pid) ?? NaN) - c0) / ((Date.now() - w0) / 1000)) * 100;
    };
    figures.idleCpuWithConsolePct = await cpu();
    const blank = await browser.newPage();
    await page.close();
    await sleep(3_000);
    figures.idleCpuNoConsolePct = await cpu();

    // 5. Stop a unit: click to the API's answer.
    const p2 = blank;
    await p2.setViewportSize({ width: 1600, height: 1000 });
    await p2.goto(url);
    await waitListed(p2);
    const clicks: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const unit = units[i * 13 + 1] as string;
      await goRoute(p2, `units/${unit}`);
      const stop = p2.locator('[data-test=stop]');
      await stop.waitFor({ timeout: 30_000 });
      const answered = p2.waitForResponse(
        (r) => r.url().endsWith('/api/v1/actions/stop') && r.request().method() === 'POST',
      );
      const c0 = Date.now();
      await stop.click();
      const res = await answered;
      clicks.push(Date.now() - c0);
      if (!res.ok()) throw new Error(`stop ${unit}: ${res.status()} ${await res.text()}`);
    }
    figures.stopClickMedianMs = quantile(clicks, 0.5);
    figures.stopClickMaxMs = quantile(clicks, 1);
  } finally {
    await browser?.close().catch(() => undefined);
    await agents?.close().catch(() => undefined);
    await leases?.close().catch(() => undefined);
    logs?.close();
    await procs.stopAll();
    store?.close();
    await etcd?.stop().catch(() => undefined);
    if (!opts.keep) await rm(workDir, { recursive: true, force: true });
    procs.dismissWatchdog();
  }
  report(opts, figures);
}

const EMPTY_STATE: UnitState = {
  name: '',
  machine: '',
  hash: '',
  loadState: '',
  activeState: '',
  subState: '',
  containerId: '',
  pid: 0,
  exitStatus: -1,
  exitSignal: '',
  restarts: 0,
  since: 0n,
  message: '',
  image: '',
  health: '',
  healthFailures: 0,
  healthChecks: [],
  restartReason: '',
};

function report(opts: Options, f: Record<string, number | string>): void {
  const mb = (b: unknown) => `${(Number(b) / 1024 ** 2).toFixed(0)} MB`;
  const ms = (v: unknown) => `${Math.round(Number(v))} ms`;
  const rows: [string, string, string][] = [
    ['load to the map drawn (cold cache)', ms(f.loadColdMs), '<= 1.5 s'],
    ['load to the map drawn (warm cache)', ms(f.loadWarmMs), '<= 1.5 s'],
    [`etcd change -> drawn, p99 at ${opts.rate}/s`, ms(f.changeP99Ms), '<= 1 s'],
    ['  p50 / max', `${ms(f.changeP50Ms)} / ${ms(f.changeMaxMs)}`, ''],
    ['  changes written / never drawn', `${f.changes} / ${f.changesMissed}`, ''],
    ['JS heap, map open', mb(f.heapMapBytes), ''],
    ['JS heap, map and units table open', mb(f.heapMapAndTableBytes), '<= 300 MB'],
    [
      'scheduler CPU, idle, one console open',
      `${Number(f.idleCpuWithConsolePct).toFixed(2)}%`,
      '<= 1%',
    ],
    ['scheduler CPU, idle, no console', `${Number(f.idleCpuNoConsolePct).toFixed(2)}%`, ''],
    ['stop a unit: click -> API answered (median of 5)', ms(f.stopClickMedianMs), '<= 300 ms'],
    ['  max of 5', ms(f.stopClickMaxMs), ''],
  ];
  const n = (x: number) => x.toLocaleString('en-US');
  process.stdout.write(`Console at ${n(opts.machines)} machines, ${n(opts.count)} units\n`);
  for (const [label, value, target] of rows) {
    process.stdout.write(`${label.padEnd(50)} ${value.padStart(14)}  ${target}\n`);
  }
  process.stdout.write(`${JSON.stringify({ ...opts, ...f })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:console failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});

/**
 * Agent benchmark, against a real etcd with a real agent process (`node dist/agent/main.js`)
 * and the runc driver (the process driver where runc cannot run; `--driver process` forces it):
 *
 * 1. placement -> running, one at a time: the unit record is written first, then the clock
 *    starts as the placement is written and stops when this process sees `states/<name>`
 *    report active/running (etcd watch). p50, p99 and max over `--units` (100) units; goal
 *    p99 < 250 ms with runc.
 * 2. the same in one burst: `--burst` (100) more placements written back to back, each
 *    measured from its own write (informational: the host's two cores start them all).
 * 3. the agent process's RSS with all of them (200) running.
 *
 * With runc, all of it twice, side by side: containers in the host's user namespace
 * (`--userns-remap=off`) and in one of their own (`--userns-remap=auto`, what it costs to
 * start); `--userns-remap VALUE` runs only that one.
 *
 * Prints a table per run, then one JSON line per run. Run with `npm run bench:agent` (needs
 * root for runc).
 */
import { spawn } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { isRuncUsable } from '../agent/runtime/index.js';
import type { UnitState } from '../proto/flotilla/v1/records.js';
import { codecs, openStore, WatchCache, type Store } from '../store/index.js';
import { parseUnit } from '../unit/index.js';
import { freePort, startEtcd, uniquePrefix } from '../testkit/index.js';

const MAIN = fileURLToPath(new URL('../agent/main.js', import.meta.url));
const MACHINE = 'bench-agent';
const UNIT_TEXT = '[Service]\nExecStart=/bin/sleep 3600\nMemoryMax=16M\n';
const run = promisify(execFile);

/** When each unit was first seen active/running, from a watch on states/. */
class RunningClock {
  private readonly waiters = new Map<string, (at: number) => void>();
  private readonly seen = new Map<string, number>();
  /** The last state of each unit, for the message of a unit that never runs. */
  private readonly last = new Map<string, string>();
  constructor(readonly cache: WatchCache<UnitState>) {
    cache.on((e) => {
      if (e.type !== 'put') return;
      const s = e.value;
      this.last.set(s.name, `${s.activeState}/${s.subState} ${s.message}`.slice(0, 500));
      if (s.activeState !== 'active' || s.subState !== 'running') return;
      if (this.seen.has(s.name)) return;
      const at = Date.now();
      this.seen.set(s.name, at);
      this.waiters.get(s.name)?.(at);
      this.waiters.delete(s.name);
    });
  }

  static async start(store: Store): Promise<RunningClock> {
    const cache = new WatchCache(store, { prefix: store.keys.dir('state'), codec: codecs.state });
    await cache.ready();
    return new RunningClock(cache);
  }

  /** Resolves with the time `name` is (or was) seen running. */
  running(name: string, timeoutMs = 120_000): Promise<number> {
    const at = this.seen.get(name);
    if (at !== undefined) return Promise.resolve(at);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `${name} not running in ${timeoutMs} ms; last state: ${this.last.get(name) ?? 'none'}`,
            ),
          ),
        timeoutMs,
      );
      this.waiters.set(name, (t) => {
        clearTimeout(timer);
        resolve(t);
      });
    });
  }
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

function summary(latencies: readonly number[]) {
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? NaN,
  };
}

/** Writes the placement; `latency` resolves once the unit is seen running. */
async function placeTimed(
  store: Store,
  clock: RunningClock,
  name: string,
  hash: string,
): Promise<{ latency: Promise<number> }> {
  const started = Date.now();
  await store.putRecord(codecs.placement, store.keys.placement(MACHINE, name), {
    unit: name,
    machine: MACHINE,
    hash,
    epoch: 1n,
    desiredState: 'launched',
    ports: [],
  });
  return { latency: clock.running(name).then((at) => at - started) };
}

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  return kb === undefined ? NaN : Number(kb) * 1024;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      units: { type: 'string', default: '100' },
      burst: { type: 'string', default: '100' },
      driver: { type: 'string' },
      'userns-remap': { type: 'string' },
    },
  });
  const driver = values.driver ?? ((await isRuncUsable()) ? 'runc' : 'process');
  const remaps = values['userns-remap'] !== undefined ? [values['userns-remap']] : ['off', 'auto'];
  for (const remap of driver === 'runc' ? remaps : ['off']) {
    await measure(driver, remap, Number(values.units), Number(values.burst));
  }
}

async function measure(
  driver: string,
  remap: string,
  sequential: number,
  burst: number,
): Promise<void> {
  const etcd = await startEtcd();
  const prefix = uniquePrefix('bench-agent');
  const store = openStore({ endpoints: etcd.endpoint, prefix });
  const stateDir = await mkdtemp(join(tmpdir(), 'flotilla-bench-agent-'));
  const logsPort = await freePort();
  const agent = spawn(
    process.execPath,
    [
      MAIN,
      `--machine-id=${MACHINE}`,
      `--etcd-endpoints=${etcd.endpoint}`,
      `--prefix=${prefix}`,
      `--driver=${driver}`,
      `--userns-remap=${remap}`,
      `--state-dir=${stateDir}`,
      `--logs-listen=127.0.0.1:${logsPort}`,
      '--allow-insecure-clients', // nothing reads its logs here
      '--log-level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => agent.once('exit', () => resolve()));
  const clock = await RunningClock.start(store);
  try {
    const total = sequential + burst;
    const names = Array.from({ length: total }, (_, i) => `bench-${i}.service`);
    for (const name of names) {
      const hash = parseUnit(name, UNIT_TEXT).hash;
      await store.putRecord(codecs.unit, store.keys.unit(name), {
        name,
        file: UNIT_TEXT,
        hash,
        desiredState: 'launched',
      });
    }
    const hash = parseUnit('x.service', UNIT_TEXT).hash;
    // Warm-up: the first unit pays for loading code paths; not measured.
    await store.putRecord(codecs.unit, store.keys.unit('warmup.service'), {
      name: 'warmup.service',
      file: UNIT_TEXT,
      hash,
      desiredState: 'launched',
    });
    await (
      await placeTimed(store, clock, 'warmup.service', hash)
    ).latency;

    const one: number[] = [];
    for (const name of names.slice(0, sequential))
      one.push(await (await placeTimed(store, clock, name, hash)).latency);
    const pending: Promise<number>[] = [];
    for (const name of names.slice(sequential))
      pending.push((await placeTimed(store, clock, name, hash)).latency);
    const many = await Promise.all(pending);
    await new Promise((resolve) => setTimeout(resolve, 2_000)); // let the agent settle
    const rss = agent.pid === undefined ? NaN : await rssBytes(agent.pid);
    // What the containers really run in, read from one of them (`0 0 4294967295`: the host's).
    const pid = clock.cache.entries().find((e) => e.value.pid > 0)?.value.pid;
    const uidMap = pid === undefined ? '' : await readFile(`/proc/${pid}/uid_map`, 'utf8');
    const userns = uidMap.trim().split(/\s+/).join(' ');

    const seq = summary(one);
    const bur = summary(many);
    const fmt = (ms: number) => `${ms.toFixed(0)} ms`.padStart(9);
    process.stdout.write(
      `agent benchmark (${driver} driver, --userns-remap=${remap}, uid_map ${userns})\n\n`,
    );
    process.stdout.write(`measure                          n      p50      p99      max\n`);
    process.stdout.write(
      `placement -> running, one by one ${String(seq.n).padStart(4)} ${fmt(seq.p50)}${fmt(seq.p99)}${fmt(seq.max)}   goal p99 < 250 ms: ${seq.p99 < 250 ? 'met' : 'MISSED'}\n`,
    );
    process.stdout.write(
      `placement -> running, burst      ${String(bur.n).padStart(4)} ${fmt(bur.p50)}${fmt(bur.p99)}${fmt(bur.max)}\n`,
    );
    process.stdout.write(
      `agent RSS with ${total + 1} units running: ${(rss / 1024 / 1024).toFixed(1)} MiB\n\n`,
    );
    process.stdout.write(
      `${JSON.stringify({
        bench: 'agent',
        driver,
        usernsRemap: remap,
        uidMap: userns,
        sequential: seq,
        burst: bur,
        unitsRunning: total + 1,
        agentRssBytes: rss,
        goalP99Ms: 250,
        goalMet: seq.p99 < 250,
      })}\n`,
    );
  } finally {
    agent.kill('SIGTERM'); // stops every unit, then exits
    const killer = setTimeout(() => agent.kill('SIGKILL'), 120_000);
    await exited;
    clearTimeout(killer);
    await clock.cache.close();
    store.close();
    if (driver === 'runc') {
      const { stdout } = await run('runc', ['list', '-q']).catch(() => ({ stdout: '' }));
      for (const id of stdout.split('\n')) {
        if (id.startsWith(`flotilla-${MACHINE}-`))
          await run('runc', ['delete', '-f', id]).catch(() => undefined);
      }
    }
    await rm(stateDir, { recursive: true, force: true });
    await etcd.stop();
  }
}

await main();

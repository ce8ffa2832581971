/**
 * fleet's API at scale: `fleetctl list-units` at 100,000 units through `/fleet/v1/`. A real
 * etcd, one real scheduler replica (`--http-listen`), the cluster built through the real API
 * (`flotctl submit` and `flotctl scale web@.service=N`, as bench/scale.ts builds it); only the
 * machines and their agents' state reports are simulated (bench/sim-machines.ts,
 * bench/sim-agents.ts). Measured, each against its target:
 *
 * 1. list-units as fleetctl makes it: every page of GET /fleet/v1/state, then GET
 *    /fleet/v1/machines, decoded (target <= 5 s); and list-unit-files' GET /fleet/v1/units;
 * 2. the slowest single request of those, as time to the last byte on loopback (target
 *    <= 300 ms): an upper bound of the server's time;
 * 3. with FLEETCTL=/path/to/fleetctl, the real fleetctl's `list-units` and `list-unit-files`
 *    (wall time, rows printed).
 *
 * Flags: `--machines` (5000), `--count` (100000), `--runs` (3, best and worst kept). Prints a
 * table, then one JSON line. Run with `npm run bench:fleet-api`; small first:
 * `-- --machines 200 --count 4000`.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { openStore } from '../store/index.js';
import { freePorts, startEtcd, uniquePrefix } from '../testkit/index.js';
import { readLeader } from '../scheduler/leader/leadership.js';
import { SimAgents } from './sim-agents.js';
import {
  machineLeasePool,
  makeMachines,
  registerMachines,
  startLogsStandIn,
  type SimMachine,
} from './sim-machines.js';
import { failureOf, flotctl, logTail, Processes, startReplica } from './scale-procs.js';
import { TEMPLATE, TEMPLATE_TEXT } from './scale-steps.js';

const progress = (text: string): boolean => process.stderr.write(`${text}\n`);

interface Timed {
  readonly ms: number;
  readonly bytes: number;
  readonly json: unknown;
}

/** 503s answered (etcd too slow on this shared machine) and retried: reported, not hidden. */
let retried = 0;

/** GET `path`, again (at most 3 times) after a 503; the time of the answer that counted. */
async function get(port: number, path: string): Promise<Timed> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await getOnce(port, path);
    } catch (err) {
      if (attempt >= 3 || !(err instanceof Error) || !err.message.includes(': 503 ')) throw err;
      retried += 1;
      progress(`  retrying after: ${err.message.slice(0, 200)}`);
    }
  }
}

/** GET `path` on host:port; the time until the last byte, and the parsed body. */
function getOnce(port: number, path: string): Promise<Timed> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, headers: { 'User-Agent': 'bench' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const ms = performance.now() - t0;
          const body = Buffer.concat(chunks);
          if (res.statusCode !== 200) {
            reject(new Error(`GET ${path}: ${res.statusCode} ${body.toString().slice(0, 300)}`));
            return;
          }
          resolve({ ms, bytes: body.length, json: JSON.parse(body.toString('utf8')) as unknown });
        });
      },
    );
    req.setTimeout(60_000, () => req.destroy(new Error(`GET ${path}: no answer in 60 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** Every page of a listing as fleetctl reads it; total time, pages, entries, slowest page. */
async function listAll(port: number, resource: string, field: string) {
  const t0 = performance.now();
  let token = '';
  let pages = 0;
  let entries = 0;
  let slowest = 0;
  let bytes = 0;
  do {
    const q = token === '' ? '?alt=json' : `?alt=json&nextPageToken=${encodeURIComponent(token)}`;
    const page = await get(port, `/fleet/v1/${resource}${q}`);
    const body = page.json as Record<string, unknown>;
    entries += (body[field] as unknown[] | undefined)?.length ?? 0;
    token = typeof body['nextPageToken'] === 'string' ? body['nextPageToken'] : '';
    pages += 1;
    bytes += page.bytes;
    slowest = Math.max(slowest, page.ms);
  } while (token !== '');
  return { ms: performance.now() - t0, pages, entries, slowest, bytes };
}

/** Runs the real fleetctl; wall time and rows printed. */
function fleetctl(
  bin: string,
  url: string,
  verb: string,
): Promise<{ ms: number; rows: number; code: number | null }> {
  const t0 = performance.now();
  const child = spawn(bin, ['--endpoint', url, verb, '--no-legend'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let rows = 0;
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    for (const ch of c) if (ch === '\n') rows += 1;
  });
  return new Promise((resolve) => {
    child.once('close', (code) => resolve({ ms: performance.now() - t0, rows, code }));
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { machines: { type: 'string' }, count: { type: 'string' }, runs: { type: 'string' } },
  });
  const machinesN = Number(values.machines ?? 5_000);
  const count = Number(values.count ?? 100_000);
  const runs = Number(values.runs ?? 3);
  const workDir = await mkdtemp(join(tmpdir(), 'flotilla-bench-fleet-'));
  const procs = new Processes(workDir);
  const etcd = await startEtcd({ extraArgs: [`--quota-backend-bytes=${8 * 1024 ** 3}`] });
  const store = openStore({ endpoints: etcd.endpoint, prefix: uniquePrefix('fleet-bench') });
  const logs = await startLogsStandIn();
  // 60 s, not an agent's 10: no machine is meant to be lost here, and a loaded etcd delays renewals.
  const pool = machineLeasePool(store, machinesN, 60);
  const machines = makeMachines(machinesN, logs.endpoint);
  const byId = new Map<string, SimMachine>(machines.map((m) => [m.id, m]));
  const agents = await SimAgents.start(store, {
    leaseOf: (id) => byId.get(id)?.lease,
    countedPrefix: 'web@',
  });
  const result: Record<string, unknown> = { machines: machinesN, count };
  let lost = 0;
  pool.on((e) => {
    if (e.type === 'error') progress(`  keepalive stream: ${e.error.message}`);
    else lost += 1;
  });
  try {
    let t = Date.now();
    await registerMachines(store, pool, machines);
    progress(`registered ${machinesN} machines in ${Date.now() - t} ms`);
    const [apiPort, httpPort] = await freePorts(2);
    const replica = await startReplica(procs, {
      etcdEndpoint: etcd.endpoint,
      prefix: store.keys.prefix,
      name: 'fleet-bench',
      port: apiPort ?? 0,
      electionTtlS: 5,
      rescheduleRate: undefined,
      maxInstances: Math.max(count, 10_000),
      extraArgs: [`--http-listen=127.0.0.1:${httpPort}`],
    });
    while ((await readLeader(store))?.name !== 'fleet-bench') await sleep(100);
    const file = join(workDir, TEMPLATE);
    await writeFile(file, TEMPLATE_TEXT);
    const timeout = { timeoutMs: 600_000 };
    const submitted = await flotctl(procs, replica.api, ['submit', file], timeout);
    if (submitted.code !== 0) throw new Error(`submit: ${failureOf(submitted)}`);
    t = Date.now();
    const scaled = await flotctl(
      procs,
      replica.api,
      ['scale', '--timeout', '600s', `${TEMPLATE}=${count}`],
      timeout,
    );
    if (scaled.code !== 0) {
      progress(`the replica's log ends:\n${logTail(replica.logPath, 30)}`);
      throw new Error(`scale: ${failureOf(scaled)} (${lost} leases lost)`);
    }
    // The listing is measured at full size even if a few states lag (said in the result).
    while (agents.reported < count && Date.now() - t < 600_000) await sleep(200);
    result['reported'] = agents.reported;
    progress(
      `${agents.reported} of ${count} active on ${machinesN} machines: ${Date.now() - t} ms`,
    );
    const port = httpPort ?? 0;
    const listUnits: number[] = [];
    const pages: number[] = [];
    let shape = {};
    for (let i = 0; i < runs; i++) {
      t = performance.now();
      const states = await listAll(port, 'state', 'states');
      const ms = await listAll(port, 'machines', 'machines');
      listUnits.push(performance.now() - t);
      pages.push(states.slowest, ms.slowest);
      progress(
        `  list-units ${Math.round(performance.now() - t)} ms: ${states.pages} state pages (slowest ${Math.round(states.slowest)} ms), machines ${Math.round(ms.ms)} ms`,
      );
      shape = {
        statePages: states.pages,
        stateRows: states.entries,
        stateBytes: states.bytes,
        machineRows: ms.entries,
      };
    }
    const files: number[] = [];
    for (let i = 0; i < runs; i++) {
      const u = await listAll(port, 'units', 'units');
      files.push(u.ms);
      pages.push(u.slowest);
      progress(
        `  list-unit-files ${Math.round(u.ms)} ms: ${u.pages} pages (slowest ${Math.round(u.slowest)} ms)`,
      );
      shape = { ...shape, unitPages: u.pages, unitRows: u.entries, unitBytes: u.bytes };
    }
    const one: number[] = [];
    for (let i = 0; i < 20; i++)
      one.push((await get(port, `/fleet/v1/units/web%40${i + 1}.service?alt=json`)).ms);
    Object.assign(result, shape, {
      listUnitsMs: { best: Math.min(...listUnits), worst: Math.max(...listUnits), target: 5_000 },
      listUnitFilesMs: { best: Math.min(...files), worst: Math.max(...files) },
      slowestRequestMs: { value: Math.max(...pages), target: 300 },
      getUnitMs: { worst: Math.max(...one) },
      retried503: retried,
    });
    const bin = process.env['FLEETCTL'];
    if (bin !== undefined && bin !== '') {
      const url = `http://127.0.0.1:${port}`;
      result['fleetctlListUnits'] = await fleetctl(bin, url, 'list-units');
      result['fleetctlListUnitFiles'] = await fleetctl(bin, url, 'list-unit-files');
    }
  } finally {
    await agents.close().catch(() => undefined);
    await pool.close().catch(() => undefined);
    logs.close();
    await procs.stopAll();
    store.close();
    await etcd.stop().catch(() => undefined);
    await rm(workDir, { recursive: true, force: true });
    procs.dismissWatchdog();
  }
  const round = (x: unknown): unknown =>
    typeof x === 'number'
      ? Math.round(x)
      : x !== null && typeof x === 'object'
        ? Object.fromEntries(Object.entries(x).map(([k, v]) => [k, round(v)]))
        : x;
  const shown = round(result) as Record<string, unknown>;
  for (const [k, v] of Object.entries(shown)) console.log(`${k.padEnd(24)} ${JSON.stringify(v)}`);
  console.log(JSON.stringify(shown));
}

await main();

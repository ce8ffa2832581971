/**
 * Routing mesh benchmark (`npm run bench:mesh`): the data plane chosen by measurement, and how
 * fast endpoint changes reach every machine. Against a real etcd, with wrk and the C backend
 * of bench/mesh-backend.c (three of them), side by side in one run:
 *
 * 1. peak requests/s (wrk, 64 connections, keep-alive), `--rounds` rounds interleaved so that
 *    the shared machine's load hits every target alike; the median per target: direct to one
 *    backend; HAProxy configured by hand (3 servers, round robin, TCP mode); HAProxy driven
 *    through its runtime API (server-template slots filled with `set server`: candidate a);
 *    Flotilla's mesh (the agent's RoutingMesh in its own process, fed from etcd: candidate b);
 * 2. p99 latency at half of the mesh's peak, direct and through the mesh (paced wrk);
 * 3. endpoint change -> every routing agent's view (bench/mesh-propagation.ts).
 *
 * Prints a table, then one JSON line. Needs gcc, haproxy and wrk.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { codecs, openStore } from '../store/index.js';
import { freePorts, startEtcd, uniquePrefix } from '../testkit/index.js';
import {
  buildBackend,
  children,
  runtimeApi,
  startBackend,
  startHaproxy,
  wrk,
  type WrkResult,
} from './mesh-load.js';
import { propagation } from './mesh-propagation.js';

const CHILD = fileURLToPath(new URL('./mesh-child.js', import.meta.url));

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
    routers: { type: 'string', default: '200' },
    endpoints: { type: 'string', default: '10000' },
    services: { type: 'string', default: '10' },
    watched: { type: 'string', default: '1' },
    changes: { type: 'string', default: '50' },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

async function main(): Promise<void> {
  const load = loadavg()[0] ?? 0;
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-bench-mesh-'));
  const etcd = await startEtcd();
  try {
    const bin = await buildBackend(dir);
    const [b1, b2, b3, hand, api, meshPort, one, agentHaproxyPort] = (await freePorts(8)) as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const backends = [b1, b2, b3];
    await Promise.all(backends.map((p, i) => startBackend(bin, p, `b${i + 1}`)));
    await startHaproxy(dir, 'hand', hand, backends);
    await startHaproxy(dir, 'one', one, backends, 1);
    const { socket } = await startHaproxy(dir, 'api', api, { slots: 8 });
    const apiStarted = performance.now();
    await runtimeApi(
      socket,
      backends.flatMap((p, i) => [
        `set server b/s${i + 1} addr 127.0.0.1 port ${p}`,
        `set server b/s${i + 1} state ready`,
      ]),
    );
    const apiMs = performance.now() - apiStarted;

    // The mesh: records in etcd, the agent's code in a process of its own, on each data plane.
    const meshChild = async (plane: string, port: number): Promise<ChildProcess> => {
      const prefix = uniquePrefix(`bench-mesh-${plane}`);
      const store = openStore({ endpoints: [etcd.endpoint], prefix });
      await store.put(
        store.keys.service('web'),
        codecs.service.encode({ name: 'web', publish: port, publishPortName: 'http', units: [] }),
      );
      for (const [i, bport] of backends.entries()) {
        const unit = `web@${i + 1}.service`;
        await store.put(
          store.keys.endpoint('web', `m${i + 1}`, unit, 'http'),
          codecs.endpoint.encode({
            service: 'web',
            unit,
            machine: `m${i + 1}`,
            address: '127.0.0.1',
            port: bport,
            portName: 'http',
            tags: [],
            health: 'none',
            sinceUnixMs: BigInt(Date.now()),
          }),
        );
      }
      store.close();
      const child = spawn(process.execPath, [CHILD, 'mesh', etcd.endpoint, prefix, plane], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        child.once('message', () => resolve());
        child.once('exit', (code) => reject(new Error(`mesh child (${plane}) exited: ${code}`)));
      });
      return child;
    };
    await meshChild('builtin', meshPort);
    const agentHaproxy = await meshChild('haproxy', agentHaproxyPort);

    const targets = {
      direct: b1,
      'haproxy (by hand)': hand,
      'haproxy (runtime API)': api,
      'haproxy (1 thread)': one,
      mesh: meshPort,
      'mesh on haproxy (agent)': agentHaproxyPort,
    };
    const peaks = new Map<string, WrkResult[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, port] of Object.entries(targets)) {
        const r = await wrk(dir, port, { connections: 64, seconds: SECONDS });
        peaks.set(name, [...(peaks.get(name) ?? []), r]);
      }
    }
    const peak = (name: string): number => median((peaks.get(name) ?? []).map((r) => r.rps));
    // As a user runs it: as many threads as CPUs (HAProxy's default), by hand.
    const haproxyPeak = peak('haproxy (by hand)');

    // Half of the mesh's peak, paced: calibrate one connection's rate, then size the pool.
    const DELAY_MS = 2;
    const calib = await wrk(dir, b1, { connections: 8, seconds: 2, delayMs: DELAY_MS });
    const perConnection = calib.rps / 8;
    const connections = Math.max(1, Math.round(peak('mesh') / 2 / perConnection));
    const half = {
      direct: await wrk(dir, b1, { connections, seconds: SECONDS * 2, delayMs: DELAY_MS }),
      mesh: await wrk(dir, meshPort, { connections, seconds: SECONDS * 2, delayMs: DELAY_MS }),
      haproxyAgent: await wrk(dir, agentHaproxyPort, {
        connections,
        seconds: SECONDS * 2,
        delayMs: DELAY_MS,
      }),
    };
    // Its HAProxy stops with it (SIGTERM); the other children are simply killed.
    const gone = new Promise((resolve) => agentHaproxy.once('exit', resolve));
    agentHaproxy.kill('SIGTERM');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))]);

    console.log(
      `machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, load average ${load.toFixed(2)} at start (shared)`,
    );
    console.log(`\npeak, wrk -t1 -c64, ${SECONDS}s x ${ROUNDS} rounds interleaved (median):`);
    for (const name of Object.keys(targets)) {
      const rs = peaks.get(name) ?? [];
      console.log(
        `  ${name.padEnd(22)} ${peak(name).toFixed(0).padStart(8)} req/s` +
          `  (rounds: ${rs.map((r) => r.rps.toFixed(0)).join(', ')}; p99 ${median(rs.map((r) => r.p99Ms)).toFixed(2)} ms; errors ${rs.reduce((a, r) => a + r.errors, 0)})`,
      );
    }
    const ratio = peak('mesh') / haproxyPeak;
    console.log(`  mesh / HAProxy by hand: ${(ratio * 100).toFixed(0)}% (target >= 80%)`);
    const ratioOne = peak('mesh') / peak('haproxy (1 thread)');
    console.log(
      `  mesh / HAProxy with one thread, as the mesh has: ${(ratioOne * 100).toFixed(0)}%`,
    );
    const ratioAgent = peak('mesh on haproxy (agent)') / haproxyPeak;
    console.log(
      `  mesh on HAProxy as the agent runs it / HAProxy by hand: ${(ratioAgent * 100).toFixed(0)}% (target >= 80%)`,
    );
    console.log(`  runtime API: 3 servers set and enabled in ${apiMs.toFixed(1)} ms`);
    const added = half.mesh.p99Ms - half.direct.p99Ms;
    console.log(`\nhalf of the mesh's peak (${connections} connections, ${DELAY_MS} ms apart):`);
    console.log(
      `  direct ${half.direct.rps.toFixed(0)} req/s p50 ${half.direct.p50Ms.toFixed(3)} ms p99 ${half.direct.p99Ms.toFixed(3)} ms`,
    );
    console.log(
      `  mesh   ${half.mesh.rps.toFixed(0)} req/s p50 ${half.mesh.p50Ms.toFixed(3)} ms p99 ${half.mesh.p99Ms.toFixed(3)} ms`,
    );
    console.log(
      `  mesh on haproxy ${half.haproxyAgent.rps.toFixed(0)} req/s p50 ${half.haproxyAgent.p50Ms.toFixed(3)} ms p99 ${half.haproxyAgent.p99Ms.toFixed(3)} ms`,
    );
    const addedAgent = half.haproxyAgent.p99Ms - half.direct.p99Ms;
    console.log(
      `  added p99: built-in ${added.toFixed(3)} ms, haproxy ${addedAgent.toFixed(3)} ms (target <= 1 ms)`,
    );
    const prop3 = await propagation(etcd.endpoint, CHILD, {
      routers: 3,
      perProcess: 1,
      services: 1,
      endpoints: 6,
      watched: 1,
      changes: Number(values.changes),
    });
    const propBig = await propagation(etcd.endpoint, CHILD, {
      routers: Number(values.routers),
      perProcess: 50,
      services: Number(values.services),
      endpoints: Number(values.endpoints),
      watched: Number(values.watched),
      changes: Number(values.changes),
    });
    for (const p of [prop3, propBig]) {
      console.log(
        `\nendpoint change -> all ${p.routers} routing agents (${p.endpoints} endpoints in ${p.services} services, each agent following ${p.watched}; ${p.changes} changes):` +
          ` p50 ${p.p50Ms} ms p99 ${p.p99Ms} ms max ${p.maxMs} ms (setup ${p.setupMs} ms)`,
      );
    }
    console.log(
      JSON.stringify({
        load,
        peaks: Object.fromEntries(Object.keys(targets).map((n) => [n, peak(n)])),
        meshOverHaproxy: ratio,
        meshOverHaproxyOneThread: ratioOne,
        haproxyAgentOverHaproxy: ratioAgent,
        addedP99HaproxyAgentMs: addedAgent,
        runtimeApiMs: apiMs,
        half,
        addedP99Ms: added,
        propagation: [prop3, propBig],
      }),
    );
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await etcd.stop();
    await rm(dir, { recursive: true, force: true });
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

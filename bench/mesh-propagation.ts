/**
 * Endpoint change -> every routing agent's view, for `bench/mesh.ts`. Simulated routing agents
 * run in child processes (bench/mesh-child.ts `routers`), each with its own ServiceDirectory
 * (the agent's code) following every service's endpoints, as machines that publish them all
 * do (Swarm's mesh: every machine routes every published service). The parent writes
 * `endpoints` records over `services` services, then, `changes` times, adds a probe endpoint
 * to the first service (and removes the last one) and times until every agent sees it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { codecs, openStore, type Store } from '../store/index.js';
import { uniquePrefix } from '../testkit/index.js';
import { children } from './mesh-load.js';

/** What to simulate. */
export interface PropagationOptions {
  readonly routers: number;
  /** Routing agents per child process. */
  readonly perProcess: number;
  readonly services: number;
  readonly endpoints: number;
  /** Services each routing agent follows (the probe service first). */
  readonly watched: number;
  readonly changes: number;
}

/** Figures of one propagation run (milliseconds). */
export interface PropagationResult {
  readonly routers: number;
  readonly services: number;
  readonly endpoints: number;
  readonly watched: number;
  readonly changes: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Writing the records and every agent's first listing. */
  readonly setupMs: number;
}

interface Report {
  readonly agent?: number;
  readonly seen?: string[];
  readonly at?: number;
  readonly ready?: number;
}

function endpointRecord(service: string, machine: string, unit: string, port: number) {
  return codecs.endpoint.encode({
    service,
    unit,
    machine,
    address: '10.0.0.1',
    port,
    portName: 'http',
    tags: [],
    health: 'none',
    sinceUnixMs: BigInt(Date.now()),
  });
}

async function putAll(store: Store, puts: readonly [string, string][]): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < puts.length) {
      const [key, value] = puts[next++] as [string, string];
      await store.put(key, value);
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

export async function propagation(
  etcd: string,
  child: string,
  opts: PropagationOptions,
): Promise<PropagationResult> {
  const setupStart = Date.now();
  const prefix = uniquePrefix('bench-mesh-prop');
  const store = openStore({ endpoints: [etcd], prefix });
  const services = Array.from({ length: opts.services }, (_, i) => `svc${i}`);
  const probe = services[0] ?? 'svc0';
  const puts: [string, string][] = [];
  for (let i = 0; i < opts.endpoints; i++) {
    const service = services[i % services.length] ?? probe;
    const machine = `m${i % 200}`;
    const unit = `${service}@${i}.service`;
    puts.push([
      store.keys.endpoint(service, machine, unit, 'http'),
      endpointRecord(service, machine, unit, 20000 + (i % 10000)),
    ]);
  }
  await putAll(store, puts);

  // seen[process:agent] = the probe units that agent sees now; firstSeen per probe per agent.
  const firstSeen = new Map<string, Map<string, number>>();
  const procs: ChildProcess[] = [];
  let readyCount = 0;
  let failed: string | undefined;
  let onReport = (): void => undefined;
  for (let p = 0; p * opts.perProcess < opts.routers; p++) {
    const count = Math.min(opts.perProcess, opts.routers - p * opts.perProcess);
    const proc = spawn(
      process.execPath,
      [
        '--max-old-space-size=4096',
        child,
        'routers',
        etcd,
        prefix,
        String(count),
        services.slice(0, Math.max(1, opts.watched)).join(','),
        probe,
      ],
      { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
    );
    children.push(proc);
    procs.push(proc);
    proc.once('exit', (code) => {
      if (readyCount < opts.routers)
        failed = `a routing agents' process exited (${code}) before ready`;
      onReport();
    });
    proc.on('message', (m: Report) => {
      if (m.ready !== undefined) readyCount += m.ready;
      if (m.seen !== undefined && m.at !== undefined) {
        const agent = `${p}:${m.agent ?? 0}`;
        for (const unit of m.seen) {
          const byAgent = firstSeen.get(unit) ?? new Map<string, number>();
          firstSeen.set(unit, byAgent);
          if (!byAgent.has(agent)) byAgent.set(agent, m.at);
        }
      }
      onReport();
    });
  }
  await until(
    () => {
      if (failed !== undefined) throw new Error(failed);
      return readyCount >= opts.routers;
    },
    600_000,
    (fn) => (onReport = fn),
  );
  const setupMs = Date.now() - setupStart;

  const latencies: number[] = [];
  for (let i = 0; i < opts.changes; i++) {
    const unit = `probe@${i}.service`;
    const key = store.keys.endpoint(probe, 'mprobe', unit, 'http');
    const writtenAt = Date.now();
    await store.put(key, endpointRecord(probe, 'mprobe', unit, 30000 + i));
    await until(
      () => (firstSeen.get(unit)?.size ?? 0) >= opts.routers,
      60_000,
      (fn) => (onReport = fn),
    );
    latencies.push(Math.max(...(firstSeen.get(unit)?.values() ?? [])) - writtenAt);
    await store.delete(key);
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const proc of procs) proc.kill('SIGKILL');
  store.close();
  const sorted = [...latencies].sort((a, b) => a - b);
  const pct = (q: number): number =>
    sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
  return {
    routers: opts.routers,
    services: opts.services,
    endpoints: opts.endpoints,
    watched: opts.watched,
    changes: opts.changes,
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    maxMs: sorted.at(-1) ?? NaN,
    setupMs,
  };
}

/** Resolves once `cond()` holds, checked whenever a report arrives (and every 100 ms). */
function until(
  cond: () => boolean,
  timeoutMs: number,
  hook: (fn: () => void) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      try {
        if (!cond()) return;
      } catch (err) {
        clearInterval(tick);
        clearTimeout(timer);
        hook(() => undefined);
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      clearInterval(tick);
      clearTimeout(timer);
      hook(() => undefined);
      resolve();
    };
    const tick = setInterval(check, 100);
    const timer = setTimeout(() => {
      clearInterval(tick);
      reject(new Error(`condition not met within ${timeoutMs} ms`));
    }, timeoutMs);
    hook(check);
    check();
  });
}

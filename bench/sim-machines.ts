/**
 * Simulated machines for the scale benchmark: what thousands of agents would write, without
 * the agents. Each machine is a `machines/<id>` record under its OWN lease, as an agent's
 * registration (agent/sync/registration.ts) writes it, with zone/region/rack metadata and a
 * capacity; the leases are kept alive together (store/LeasePool, over one keepalive stream
 * per 50 machines) and the records are written in transactions of up to 128 puts. One
 * stand-in Logs service answers for every machine, so `flotctl status` reads log lines
 * through the API's relay as it would from a real agent.
 */
import { randomBytes } from 'node:crypto';
import { Server, ServerCredentials, type ServerWritableStream } from '@grpc/grpc-js';
import { LogsService, type LogLine, type TailRequest } from '../proto/flotilla/v1/logs.js';
import type { Machine } from '../proto/flotilla/v1/records.js';
import { pool } from '../lib/pool.js';
import { atomicTxn, codecs, LeasePool, MAX_TXN_OPS, type Store } from '../store/index.js';

/** 1 GiB. */
export const GIB = 1024n * 1024n * 1024n;

/** The topology: racks nest in zones, zones in regions (rack r is in zone r % 20, ...). */
export const REGIONS = 5;
export const ZONES = 20;
export const RACKS = 250;

/** What every simulated machine offers: room for 40 units of 10% CPU and 64 MiB, and more. */
const CAPACITY = { cpuMillicores: 8000n, memoryBytes: 32n * GIB, tasks: 4_194_304n };

/** One simulated machine and the lease its "agent" holds. */
export interface SimMachine {
  readonly index: number;
  readonly id: string;
  readonly record: Machine;
  lease: bigint | undefined;
  /** False once the benchmark (or etcd) took its lease away. */
  alive: boolean;
}

/** The metadata of machine `index`: rack, zone and region nested as real ones are. */
export function placeOf(index: number): Record<string, string> {
  const rack = index % RACKS;
  const zone = rack % ZONES;
  const region = zone % REGIONS;
  const pad = (n: number, w: number): string => String(n).padStart(w, '0');
  return { region: `region-${region}`, zone: `zone-${pad(zone, 2)}`, rack: `rack-${pad(rack, 3)}` };
}

/** `count` machine records with random 32-hex ids (like systemd machine ids), not registered. */
export function makeMachines(count: number, logsEndpoint: string): SimMachine[] {
  const startedAt = BigInt(Date.now());
  return Array.from({ length: count }, (_, index) => {
    const id = randomBytes(16).toString('hex');
    const record: Machine = {
      id,
      addresses: [`10.${1 + (index >> 16)}.${(index >> 8) & 255}.${index & 255}`],
      metadata: placeOf(index),
      capacity: { ...CAPACITY },
      driver: 'process',
      version: 'bench',
      agentEndpoint: logsEndpoint,
      portRangeFirst: 20000,
      portRangeLast: 32767,
      dnsEndpoint: '',
      startedAt,
      meshProblems: [],
    };
    return { index, id, record, lease: undefined, alive: true };
  });
}

/**
 * Simulated machines per LeaseKeepAlive stream of their pool: a real machine renews on its
 * agent's own stream, and etcd answers one stream's renewals one at a time, each after
 * applying the writes before it (store/lease-pool.ts): 10,000 leases on one stream wait for
 * each other, as 10,000 agents' renewals do not.
 */
const MACHINES_PER_LEASE_STREAM = 50;

/** A pool for `machines` simulated machines' leases of `ttlSeconds`, one stream per 50. */
export function machineLeasePool(store: Store, machines: number, ttlSeconds: number): LeasePool {
  const streams = Math.max(1, Math.ceil(machines / MACHINES_PER_LEASE_STREAM));
  return new LeasePool(store, { ttlSeconds, streams });
}

/**
 * Grants each machine its own lease from `leases`, then writes the records under them in
 * transactions of at most 128 puts, several in flight.
 */
export async function registerMachines(
  store: Store,
  leases: LeasePool,
  machines: readonly SimMachine[],
): Promise<void> {
  await pool(machines.length, 32, async (i) => {
    const m = machines[i] as SimMachine;
    m.lease = await leases.grant();
  });
  const chunks: SimMachine[][] = [];
  for (let i = 0; i < machines.length; i += MAX_TXN_OPS) {
    chunks.push(machines.slice(i, i + MAX_TXN_OPS));
  }
  await pool(chunks.length, 4, async (i) => {
    const chunk = chunks[i] ?? [];
    await atomicTxn(store, (b) => {
      for (const m of chunk) {
        if (m.lease === undefined) throw new Error(`machine ${m.id} has no lease`);
        b.putRecord(codecs.machine, store.keys.machine(m.id), m.record, { lease: m.lease });
      }
    });
  });
}

/** A gRPC Logs service that answers for every simulated machine. */
export interface LogsStandIn {
  /** host:port: every machine record's `agentEndpoint`. */
  readonly endpoint: string;
  /** How many Tail calls it served (so a figure can say the relay really happened). */
  readonly served: () => number;
  close(): void;
}

/**
 * Starts the stand-in Logs service on a free loopback port. Tail sends the last N (at most
 * 10) lines a unit "printed" and ends, also when asked to follow (no benchmark follows).
 */
export async function startLogsStandIn(): Promise<LogsStandIn> {
  let served = 0;
  const tail = (call: ServerWritableStream<TailRequest, LogLine>): void => {
    served += 1;
    const { unit, machine } = call.request;
    const n = Math.min(call.request.lines ?? 10, 10);
    const now = Date.now();
    for (let i = n; i > 0; i--) {
      call.write({
        time: BigInt(now - i * 1000),
        stream: 'stdout',
        text: `${unit} on ${machine}: simulated line ${11 - i}`,
      });
    }
    call.end();
  };
  const server = new Server();
  server.addService(LogsService, { tail });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
      err === null ? resolve(p) : reject(err),
    ),
  );
  return {
    endpoint: `127.0.0.1:${port}`,
    served: () => served,
    close: () => server.forceShutdown(),
  };
}

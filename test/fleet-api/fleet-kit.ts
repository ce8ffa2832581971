/**
 * fleet API tests' kit: a real scheduler replica (its API, its elected leader placing units)
 * over a real etcd, serving fleet's API on a unix socket as `--fleet-api-socket` makes it,
 * with the agents played by sim-cluster.ts (they report on the placements the real leader
 * writes); and requests made as fleetctl v1.0.0 makes them (`?alt=json`, its User-Agent,
 * `Content-Type: application/json` and a body ending in a newline on PUT).
 */
import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { pino } from 'pino';
import type { Machine } from '../../proto/flotilla/v1/records.js';
import { startScheduler } from '../../scheduler/main.js';
import { parseSchedulerArgs } from '../../scheduler/options.js';
import { openStore, type Store } from '../../store/index.js';
import { openApiCore, type ApiCore } from '../../scheduler/api/core.js';
import type { Policy } from '../../scheduler/gate/auth-policy.js';
import { FleetApi, startFleetSocket } from '../../scheduler/fleet-api/index.js';
import { uniquePrefix, type EtcdServer } from '../../testkit/index.js';
import { addMachine } from '../cli/cli-kit.js';
import { simulateCluster } from '../cli/sim-cluster.js';

/** One answer: status, Content-Type, body text and, when it is JSON, the parsed body. */
export interface Answer {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly text: string;
  readonly json: unknown;
}

/** What a request may add to fleetctl's. */
export interface RequestOptions {
  /** Sent as JSON with a trailing newline, as Go's json.Encoder does. */
  readonly body?: unknown;
  /** Raw body text instead of `body`. */
  readonly raw?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Query parameters besides `alt=json`. */
  readonly query?: Readonly<Record<string, string>>;
}

/** Every request of a test ends within this, or the test fails (fleetctl itself has no timeout). */
export const REQUEST_TIMEOUT_MS = 20_000;

/** Where a client sends: a unix socket's path, or an HTTP listener's host and port. */
export type Target = string | { readonly host: string; readonly port: number };

/** fleet's API requests to `target` (a unix socket's path, or host and port). */
export function fleetClient(target: Target) {
  return (method: string, path: string, opts: RequestOptions = {}): Promise<Answer> => {
    const query = new URLSearchParams({ alt: 'json', ...opts.query });
    const body =
      opts.raw ?? (opts.body === undefined ? undefined : `${JSON.stringify(opts.body)}\n`);
    const headers: Record<string, string> = {
      'User-Agent': 'google-api-go-client/0.5',
      ...(body === undefined || opts.raw !== undefined
        ? {}
        : { 'Content-Type': 'application/json' }),
      ...opts.headers,
    };
    return new Promise((resolve, reject) => {
      const req = request(
        {
          ...(typeof target === 'string' ? { socketPath: target } : target),
          method,
          path: `/fleet/v1/${path}?${query.toString()}`,
          headers,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = text === '' ? undefined : (JSON.parse(text) as unknown);
            } catch {
              json = undefined;
            }
            resolve({
              status: res.statusCode ?? 0,
              contentType: res.headers['content-type'],
              text,
              json,
            });
          });
        },
      );
      req.setTimeout(REQUEST_TIMEOUT_MS, () =>
        req.destroy(new Error(`${method} ${path}: no answer`)),
      );
      req.on('error', reject);
      req.end(body);
    });
  };
}

export type FleetClient = ReturnType<typeof fleetClient>;

/** A real scheduler replica serving fleet's API on a socket, machines, simulated agents. */
export interface FleetCluster {
  readonly store: Store;
  readonly socket: string;
  readonly machines: readonly Machine[];
  readonly fleet: FleetClient;
  /** The scheduler's gRPC API, for flotctl. */
  readonly endpoint: string;
}

/** Starts a {@link FleetCluster} with `machines` machines; everything stops at teardown. */
export async function fleetCluster(
  t: ExecutionContext,
  etcd: EtcdServer,
  opts: { machines?: number; extraArgs?: readonly string[] } = {},
): Promise<FleetCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-api-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const socket = join(dir, 'fleet.sock');
  const parsed = parseSchedulerArgs([
    `--etcd-endpoints=${etcd.endpoint}`,
    `--prefix=${uniquePrefix('fleet-api')}`,
    '--listen=127.0.0.1:0',
    '--log-level=silent',
    '--name=fleet-test',
    '--election-ttl=2s',
    '--tick=200ms',
    `--fleet-api-socket=${socket}`,
    ...(opts.extraArgs ?? []),
  ]);
  if (parsed.help) throw new Error('unexpected --help');
  const scheduler = await startScheduler(parsed.options, pino({ level: 'silent' }));
  t.teardown(() => scheduler.close({ resign: true }));
  const machines: Machine[] = [];
  for (let i = 1; i <= (opts.machines ?? 3); i++) {
    machines.push(
      await addMachine(scheduler.store, {
        addresses: [`10.0.0.${i}`],
        metadata: { region: i % 2 === 1 ? 'eu' : 'us', disk: 'ssd' },
      }),
    );
  }
  simulateCluster(t, scheduler.store, { machines, leader: false });
  return {
    store: scheduler.store,
    socket,
    machines,
    fleet: fleetClient(socket),
    endpoint: scheduler.apiAddress ?? '',
  };
}

/** fleet's Unit as the tests read it. */
export interface FleetUnit {
  name: string;
  options?: { section: string; name: string; value: string }[];
  desiredState?: string;
  currentState?: string;
  machineID?: string;
}

/**
 * fleetctl's wait: GET units/{name} every 250 ms until `done` holds; the currentStates seen,
 * in order (consecutive repeats folded), so a test can assert the sequence fleetctl saw.
 */
export async function pollUnit(
  fleet: FleetClient,
  name: string,
  done: (u: FleetUnit) => boolean,
  timeoutMs = 30_000,
): Promise<{ unit: FleetUnit; seen: string[] }> {
  const seen: string[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const a = await fleet('GET', `units/${encodeURIComponent(name)}`);
    if (a.status !== 200) throw new Error(`GET units/${name}: ${a.status} ${a.text}`);
    const unit = a.json as FleetUnit;
    const state = unit.currentState ?? '';
    if (seen[seen.length - 1] !== state) seen.push(state);
    if (done(unit)) return { unit, seen };
    if (Date.now() > deadline)
      throw new Error(`${name}: states ${seen.join(' -> ')}, still waiting`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** fleet's API over an API core of its own (no scheduler, no machines): for answers and paging. */
export async function fleetOnCore(
  t: ExecutionContext,
  etcd: EtcdServer,
  opts: { pageEntries?: number; policy?: Policy } = {},
): Promise<{ store: Store; fleet: FleetClient; core: ApiCore }> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-api-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const store = openStore({ endpoints: etcd.endpoint, prefix: uniquePrefix(t.title.slice(0, 40)) });
  const logger = pino({ level: 'silent' });
  const core = openApiCore({
    store,
    logger,
    ...(opts.policy === undefined ? {} : { policy: opts.policy }),
  });
  const api = new FleetApi(core.cluster, logger, {
    ...(opts.pageEntries === undefined ? {} : { pageEntries: opts.pageEntries }),
  });
  const socket = await startFleetSocket(join(dir, 'fleet.sock'), api, core.gate, logger);
  t.teardown(async () => {
    await socket.close();
    await core.close();
    store.close();
  });
  return { store, fleet: fleetClient(socket.path), core };
}

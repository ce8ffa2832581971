/**
 * The gRPC API server every scheduler replica runs: Units, Machines, Events, Logs (relayed
 * to agents) and Services, plus server reflection. Every read is served from the replica's one mirror of the
 * cluster; writes go to etcd and answer once the mirror shows them, so any replica answers
 * alike, leader or not, and a client reads its own writes.
 *
 * @example
 *   const api = await startApiServer({ store, listen: '127.0.0.1:4700', logger });
 *   logger.info({ address: api.address }, 'API listening');
 *   // at shutdown, before store.close():
 *   await api.close();
 */
import type { RegistryOptions } from '../../registry/skopeo.js';
import { getRollout, rollback, updateUnit } from './rollout.js';
import { Server } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { addHealthService } from '../../daemon/grpc-health.js';
import type { Readiness } from '../../daemon/metrics-server.js';
import { serverCredentials, tlsMode, type ClientTls, type ServerTls } from '../../daemon/tls.js';
import { EventsService, type EventsServer } from '../../proto/flotilla/v1/events.js';
import { LogsService, type LogsServer } from '../../proto/flotilla/v1/logs.js';
import { MachinesService, type MachinesServer } from '../../proto/flotilla/v1/machines.js';
import { UnitsService, type UnitsServer } from '../../proto/flotilla/v1/units.js';
import { ServicesService, type ServicesServer } from '../../proto/flotilla/v1/services.js';
import type { Policy } from '../gate/auth-policy.js';
import type { ApiMetrics } from '../gate/guard.js';
import { guardStream, unary } from '../gate/interceptors.js';
import { openApiCore, type ApiCore } from './core.js';
import type { Store, ClusterMirror } from '../../store/index.js';
import type { QuotaOptions } from './quota.js';
import { destroyUnits, setDesiredState } from './desired.js';
import { watchEventBatches, watchEvents, type StreamContext } from './events.js';
import { tailLogs } from './logs.js';
import { getUnit, listUnits } from './list-units.js';
import { listMachines, setDrained, setMachineMetadata } from './machines.js';
import { API_SERVER_OPTIONS } from './limits.js';
import { planUnits } from './plan.js';
import { resumeRescheduling } from './rescheduling.js';
import { listSchedulers } from './schedulers.js';
import { addReflection, API_SERVICES } from './reflection.js';
import { scale } from './scale.js';
import { summarizeInstances } from './instance-summary.js';
import { listEndpoints, listServices } from './services.js';
import { submitUnits } from './submit.js';
import { createSecret, deleteSecret, listSecrets } from './secrets.js';
import { SecretsService, type SecretsServer } from '../../proto/flotilla/v1/secrets.js';
import type { SecretsKey } from '../../lib/secret-box.js';

/** Options of {@link startApiServer}. */
export interface ApiServerOptions {
  /** The etcd store to write through; the server never closes it (its owner does, after close()). */
  readonly store: Store;
  /**
   * The replica's mirror of the cluster, which every read is served from (the scheduler's
   * own, shared with its engine). Without one the server opens its own and closes it.
   */
  readonly mirror?: ClusterMirror;
  /** host:port to listen on, e.g. `127.0.0.1:4700`; port 0 picks a free port. */
  readonly listen: string;
  readonly logger: Logger;
  /** How long close() lets in-flight calls finish before cutting them off. Default 5000 ms. */
  readonly shutdownGraceMs?: number;
  /** Serve TLS (mutual TLS when it has a client CA). Default: plaintext. */
  readonly tls?: ServerTls;
  /** How Logs.Tail reaches the agents' Logs services. Default: plaintext. */
  readonly agentTls?: ClientTls;
  /** Signs Logs.Tail requests to the agents (daemon/agent-token.ts). Default: unsigned. */
  readonly agentToken?: Buffer;
  /** Who may do what (scheduler/gate/auth.ts). Default: everyone everything. */
  readonly policy?: Policy;
  /** Append every write's audit line to this file (scheduler/gate/audit.ts). Default: none. */
  readonly auditLog?: string;
  /** Where request counts and durations go. Default: nowhere. */
  readonly metrics?: ApiMetrics;
  /** The replica's readiness, served as gRPC health (grpc.health.v1). Default: always ready. */
  readonly readiness?: () => Readiness;
  /** How submits reach registries to pin images. Default: REGISTRY_DEFAULTS. */
  readonly registry?: RegistryOptions;
  /**
   * The ceiling of every template's instances (`--max-instances`, admission.ts); a template's
   * MaxInstances= may lower it. Default 10,000 (admission.ts).
   */
  readonly maxInstances?: number;
  /** etcd's quota and the share past which writes are refused (quota.ts). Default 80% of 2 GiB. */
  readonly quota?: QuotaOptions;
  /**
   * The core to serve from, shared with the HTTP listener (core.ts); its owner closes it, and
   * the options above that it covers (store, mirror, policy, audit, metrics, registry, limits)
   * are then the core's. Default: a core of this server's own, closed with it.
   */
  readonly core?: ApiCore;
  /** The cluster's secrets key (`--secrets-key-file`). Default none: CreateSecret is refused. */
  readonly secretsKey?: SecretsKey;
}

/** A running API server. */
export interface ApiServer {
  /** The address actually bound, host:port (the real port when `listen` asked for 0). */
  readonly address: string;
  /** Ends open streams, lets unary calls finish (within the grace), and stops listening. */
  close(): Promise<void>;
}

/** Starts serving; resolves once the port is bound, rejects when it cannot be. */
export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const logger = opts.logger.child({ component: 'api' });
  if (opts.policy?.hasTokens === true && opts.tls === undefined && !isLoopback(opts.listen)) {
    throw new Error(
      `the auth policy has tokens, which must not cross the network in plaintext: serve the API over TLS (--tls-cert-file, --tls-key-file) or listen on a loopback address, not ${opts.listen}`,
    );
  }
  // A core given is shared with the HTTP listener and closed by its owner; else this server's own.
  const ownCore = opts.core === undefined ? openApiCore(opts) : undefined;
  const core = opts.core ?? (ownCore as ApiCore);
  const { cluster, ctx, gate } = core;
  const store = cluster.store;
  const server = new Server(API_SERVER_OPTIONS);

  const units: UnitsServer = {
    submitUnits: unary(ctx, 'Units.SubmitUnits', (req, _v, rights) =>
      submitUnits(cluster, req, rights),
    ),
    setDesiredState: unary(ctx, 'Units.SetDesiredState', (req, _v, rights) =>
      setDesiredState(cluster, req, rights),
    ),
    destroyUnits: unary(ctx, 'Units.DestroyUnits', (req) => destroyUnits(cluster, req)),
    getUnit: unary(ctx, 'Units.GetUnit', (req, _v, rights) => getUnit(cluster, req, rights)),
    listUnits: unary(ctx, 'Units.ListUnits', (req, visible, rights) =>
      listUnits(cluster, req, visible, rights),
    ),
    scale: unary(ctx, 'Units.Scale', (req, _v, rights) => scale(cluster, req, rights)),
    summarizeInstances: unary(ctx, 'Units.SummarizeInstances', (req) =>
      summarizeInstances(cluster, req),
    ),
    plan: unary(ctx, 'Units.Plan', (req, _v, rights) => planUnits(cluster, req, rights)),
    updateUnit: unary(ctx, 'Units.UpdateUnit', (req, _v, rights) =>
      updateUnit(cluster, req, rights),
    ),
    rollback: unary(ctx, 'Units.Rollback', (req) => rollback(cluster, req)),
    getRollout: unary(ctx, 'Units.GetRollout', (req) => getRollout(cluster, req)),
  };
  const machines: MachinesServer = {
    listMachines: unary(ctx, 'Machines.ListMachines', (req) => listMachines(cluster, req)),
    setMachineMetadata: unary(ctx, 'Machines.SetMachineMetadata', (req) =>
      setMachineMetadata(cluster, req),
    ),
    drainMachine: unary(ctx, 'Machines.DrainMachine', (req) => setDrained(cluster, req, true)),
    undrainMachine: unary(ctx, 'Machines.UndrainMachine', (req) => setDrained(cluster, req, false)),
    resumeRescheduling: unary(ctx, 'Machines.ResumeRescheduling', () => resumeRescheduling(store)),
    listSchedulers: unary(ctx, 'Machines.ListSchedulers', () => listSchedulers(cluster)),
  };
  const events: EventsServer = {
    watch: guardStream(gate, ctx, 'Events.Watch', watchEvents(ctx)),
    watchBatches: guardStream(gate, ctx, 'Events.WatchBatches', watchEventBatches(ctx)),
  };
  const services: ServicesServer = {
    listServices: unary(ctx, 'Services.ListServices', (req, v) => listServices(cluster, req, v)),
    listEndpoints: unary(ctx, 'Services.ListEndpoints', (req, v) => listEndpoints(cluster, req, v)),
  };
  const logs: LogsServer = {
    tail: guardStream(gate, ctx, 'Logs.Tail', tailLogs(ctx, cluster, core.agents)),
  };
  server.addService(UnitsService, units);
  server.addService(MachinesService, machines);
  server.addService(EventsService, events);
  server.addService(LogsService, logs);
  server.addService(ServicesService, services);
  const sctx = { cluster, ...(opts.secretsKey === undefined ? {} : { key: opts.secretsKey }) };
  const secrets: SecretsServer = {
    createSecret: unary(ctx, 'Secrets.CreateSecret', (req, _v, rights) =>
      createSecret(sctx, req, rights),
    ),
    listSecrets: unary(ctx, 'Secrets.ListSecrets', (_req, _v, rights) => listSecrets(sctx, rights)),
    deleteSecret: unary(ctx, 'Secrets.DeleteSecret', (req, _v, rights) =>
      deleteSecret(sctx, req, rights),
    ),
  };
  server.addService(SecretsService, secrets);
  addReflection(server, opts.policy === undefined ? undefined : { gate, ...ctx });
  const health = addHealthService(
    server,
    API_SERVICES,
    opts.readiness ?? (() => ({ ready: true, reasons: [] })),
    // Status stays open (probes carry no credentials); which services exist does not.
    { listServices: opts.policy === undefined },
  );

  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(opts.listen, serverCredentials(opts.tls), (err, bound) =>
        err === null ? resolve(bound) : reject(err),
      );
    });
  } catch (err) {
    await ownCore?.close();
    throw err;
  }
  const address = `${hostOf(opts.listen)}:${port}`;
  const tls = tlsMode(opts.tls);
  logger.info(
    {
      address,
      tls,
      etcd: store.options.endpoints,
      authorization: opts.policy === undefined ? 'off' : 'policy',
      audit: opts.auditLog ?? 'off',
    },
    'API server listening',
  );

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    health.close();
    closing ??= shutdown(server, ctx, opts.shutdownGraceMs ?? 5_000)
      .then(() => ownCore?.close())
      .then(() => logger.info({ address }, 'API server closed'));
    return closing;
  };
  return { address, close };
}

async function shutdown(server: Server, ctx: StreamContext, graceMs: number): Promise<void> {
  for (const end of [...ctx.open]) end();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Whether `listen` (host:port) is a loopback address, where a token never leaves the host. */
export function isLoopback(listen: string): boolean {
  const host = hostOf(listen).replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The host part of host:port (IPv6 in brackets stays in brackets). */
function hostOf(listen: string): string {
  const colon = listen.lastIndexOf(':');
  return colon < 0 ? listen : listen.slice(0, colon);
}

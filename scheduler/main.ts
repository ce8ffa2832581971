/**
 * `flotilla scheduler`: one scheduler replica. Every replica serves the gRPC API and mirrors
 * the cluster; the elected leader alone places units. SIGTERM or SIGINT resigns leadership
 * (so a successor takes over at once, not after the lease TTL), closes the watches and the
 * API, and resolves, so the process exits 0.
 *
 * @example
 *   // bin/flotilla: `flotilla scheduler --etcd-endpoints http://127.0.0.1:2379`
 *   await runScheduler(process.argv.slice(3));
 */
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { daemonLogger, stopSignal, UsageError } from '../daemon/options.js';
import { quietIpServernameWarning } from '../daemon/tls.js';
import { ClusterMirror, openStore, type Store } from '../store/index.js';
import type { ApiServer } from './api/server.js';
import type { ApiCore } from './api/core.js';
import type { HttpServer } from './http/server.js';
import type { FleetSocket } from './fleet-api/index.js';
import { ClusterCache } from './view/cluster-cache.js';
import { Engine, type EngineOptions, type EngineStatus } from './leader/engine.js';
import { Leadership } from './leader/leadership.js';
import { SchedulerOps } from './ops.js';
import { ReplicaAdvert } from './replica.js';
import { parseSchedulerArgs, SCHEDULER_USAGE, type SchedulerOptions } from './options.js';

/** A running scheduler replica, for the daemon and for in-process tests. */
export interface Scheduler {
  readonly name: string;
  readonly store: Store;
  readonly cache: ClusterCache;
  readonly leadership: Leadership;
  readonly engine: Engine;
  /** The API's bound host:port, or undefined when it runs without one. */
  readonly apiAddress: string | undefined;
  /** The HTTP listener's host:port (metrics, health, the JSON API), or undefined. */
  readonly metricsAddress: string | undefined;
  /** The HTTP listener's URL (`http://host:port`), or undefined when not served. */
  readonly httpUrl: string | undefined;
  status(): EngineStatus;
  /**
   * Stops planning and serving. With `resign` (default) the election key is deleted at once;
   * without, it expires with its lease, as after a crash.
   */
  close(opts?: { resign?: boolean }): Promise<void>;
}

/** Extra knobs for tests and benchmarks, beyond the flags. */
export type SchedulerTuning = Pick<EngineOptions, 'debounceMs' | 'pauseReminderMs' | 'onPass'>;

/**
 * Starts a replica: store, cluster cache, engine, API (when `listen` is set), then the
 * campaign. Resolves once the API listens; rejects (having cleaned up) when it cannot.
 */
export async function startScheduler(
  opts: SchedulerOptions,
  logger: Logger,
  tuning: SchedulerTuning = {},
): Promise<Scheduler> {
  const log = logger.child({ replica: opts.name });
  const store = openStore({
    endpoints: opts.endpoints,
    prefix: opts.prefix,
    ...(opts.etcdTls === undefined ? {} : { tls: opts.etcdTls }),
    ...(opts.etcdAuth === undefined ? {} : { auth: opts.etcdAuth }),
  });
  // The replica's one mirror of the cluster: the leader plans from it, the API reads from it.
  const mirror = new ClusterMirror(store);
  const mirrorLog = log.child({ component: 'mirror' });
  mirror.onError((err) => mirrorLog.warn({ err, code: err.code }, 'cluster mirror: recovering'));
  const cache = new ClusterCache(store, mirror, log.child({ component: 'cache' }));
  const ops = new SchedulerOps(store, mirror, opts.httpListen !== undefined);
  let api: ApiServer | undefined;
  let core: ApiCore | undefined;
  let http: HttpServer | undefined;
  let fleet: FleetSocket | undefined;
  try {
    // One core for both doors (gRPC and HTTP): one gate, audit log and set of limits.
    if (opts.listen !== undefined || opts.httpListen !== undefined) {
      const { openApiCore } = await import('./api/core.js');
      core = openApiCore({
        store,
        mirror,
        logger: log,
        ...(opts.agentTls === undefined ? {} : { agentTls: opts.agentTls }),
        ...(opts.agentToken === undefined ? {} : { agentToken: opts.agentToken }),
        ...(opts.policy === undefined ? {} : { policy: opts.policy }),
        ...(opts.auditLog === undefined ? {} : { auditLog: opts.auditLog }),
        ...(ops.metrics === undefined ? {} : { metrics: ops.metrics.api }),
        ...(opts.registry === undefined ? {} : { registry: opts.registry }),
        maxInstances: opts.maxInstances,
        quota: { quotaBytes: opts.etcdQuotaBytes, share: opts.etcdQuotaShare },
      });
    }
    // The one call site of the API server. Loaded only when it is wanted, so a replica run
    // with --listen=none (tests, benchmarks) does not load gRPC service code at all.
    if (opts.listen !== undefined) {
      const { startApiServer } = await import('./api/server.js');
      api = await startApiServer({
        store,
        mirror,
        listen: opts.listen,
        logger: log,
        ...(opts.apiTls === undefined ? {} : { tls: opts.apiTls }),
        ...(opts.agentTls === undefined ? {} : { agentTls: opts.agentTls }),
        ...(opts.agentToken === undefined ? {} : { agentToken: opts.agentToken }),
        ...(opts.policy === undefined ? {} : { policy: opts.policy }),
        ...(opts.auditLog === undefined ? {} : { auditLog: opts.auditLog }),
        ...(ops.metrics === undefined ? {} : { metrics: ops.metrics.api }),
        readiness: ops.readiness,
        ...(opts.registry === undefined ? {} : { registry: opts.registry }),
        maxInstances: opts.maxInstances,
        quota: { quotaBytes: opts.etcdQuotaBytes, share: opts.etcdQuotaShare },
        ...(core === undefined ? {} : { core }),
        ...(opts.secretsKey === undefined ? {} : { secretsKey: opts.secretsKey }),
      });
    }
    if (opts.fleetApiSocket !== undefined && core !== undefined) {
      const { startFleetOnSocket } = await import('./fleet-api/index.js');
      fleet = await startFleetOnSocket(opts.fleetApiSocket, core, log);
    }
  } catch (err) {
    await api?.close();
    await core?.close();
    await ops.close();
    cache.close();
    await mirror.close();
    store.close();
    throw err;
  }
  // Every replica says it runs, leader or not, so a listing on any replica shows them all.
  const advert = new ReplicaAdvert(
    store,
    mirror,
    {
      name: opts.name,
      ttlSeconds: opts.electionTtlSeconds,
      ...(api === undefined ? {} : { api: api.address }),
    },
    log.child({ component: 'advert' }),
  );
  const leadership = new Leadership(
    store,
    {
      name: opts.name,
      ttlSeconds: opts.electionTtlSeconds,
      info: { replica: advert.id, ...(api === undefined ? {} : { api: api.address }) },
    },
    log.child({ component: 'election' }),
  );
  const engine = new Engine(
    store,
    cache,
    leadership,
    {
      tickMs: opts.tickMs,
      rescheduleRate: opts.rescheduleRate,
      lossWindowMs: opts.lossWindowMs,
      pauseTimeoutMs: opts.pauseTimeoutMs,
      lossSettleMs: opts.lossSettleMs,
      ...(ops.metrics === undefined ? {} : { onPass: ops.metrics.pass }),
      ...tuning,
    },
    log.child({ component: 'engine' }),
  );
  if (opts.httpListen !== undefined && core !== undefined) {
    try {
      ops.attach(() => engine.status());
      const { startHttpServer } = await import('./http/server.js');
      http = await startHttpServer({
        listen: opts.httpListen,
        core,
        logger: log,
        ...(opts.apiTls === undefined ? {} : { tls: opts.apiTls }),
        ops: { registry: ops.metrics?.registry, readiness: ops.readiness },
      });
    } catch (err) {
      await fleet?.close();
      await api?.close();
      await core.close();
      await ops.close();
      cache.close();
      await mirror.close();
      store.close();
      throw err;
    }
  }
  engine.start();
  advert.start();
  leadership.start();
  log.info(
    {
      etcd: opts.endpoints,
      prefix: store.keys.prefix,
      api: api?.address,
      http: http?.url,
      ttl: opts.electionTtlSeconds,
    },
    'scheduler started',
  );

  let closing: Promise<void> | undefined;
  const close = async (closeOpts: { resign?: boolean } = {}): Promise<void> => {
    await leadership.close(closeOpts);
    await engine.close();
    await advert.close({ revoke: closeOpts.resign ?? true });
    await fleet?.close();
    await http?.close();
    await api?.close();
    await core?.close();
    await ops.close();
    cache.close();
    await mirror.close();
    store.close();
    log.info('scheduler stopped');
  };
  return {
    name: opts.name,
    store,
    cache,
    leadership,
    engine,
    apiAddress: api?.address,
    metricsAddress: http?.address,
    httpUrl: http?.url,
    status: () => engine.status(),
    close: (closeOpts) => (closing ??= close(closeOpts)),
  };
}

/**
 * The daemon: parses flags (and FLOTILLA_* env), runs until SIGTERM or SIGINT, then shuts
 * down cleanly and resolves. `--help` prints the usage and resolves. Bad flags reject with
 * UsageError (exit 2); failing to start (e.g. the API port is taken) rejects too (exit 1).
 */
export async function runScheduler(argv: string[]): Promise<void> {
  const parsed = parseSchedulerArgs(argv);
  if (parsed.help) {
    process.stdout.write(SCHEDULER_USAGE);
    return;
  }
  const opts = parsed.options;
  const logger = daemonLogger('flotilla-scheduler', opts.logLevel);
  quietIpServernameWarning();
  const scheduler = await startScheduler(opts, logger);
  const signal = await stopSignal();
  logger.info({ signal }, 'shutting down: resigning leadership');
  await scheduler.close({ resign: true });
}

/** Run directly (`node dist/scheduler/main.js ...`): tests and benchmarks start replicas so. */
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runScheduler(process.argv.slice(2)).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(
        `flotilla scheduler: ${err instanceof Error ? err.message : String(err)}\n`,
      );
      if (err instanceof UsageError) process.stderr.write(SCHEDULER_USAGE);
      process.exit(err instanceof UsageError ? 2 : 1);
    },
  );
}

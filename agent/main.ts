/**
 * `flotilla agent`: the daemon of one machine. {@link runAgent} parses flags, `FLOTILLA_*`
 * environment and the optional config file (agent/options.ts) and runs until SIGTERM or
 * SIGINT; {@link startAgent} assembles one agent (what tests and benchmarks start
 * in-process): the UnitManager (with the units a previous agent left, adopted without a
 * restart), the Logs service, the registration under a lease, the state reporter and the
 * reconcile loop.
 *
 * Shutdown: by default every unit is stopped (stop semantics) and the lease revoked, so the
 * machine and its states vanish at once and the leader moves the units without waiting for the
 * TTL. With `keepUnits` (`--keep-units-on-exit`, for an agent upgrade) the units keep running
 * and the lease is NOT revoked: the machine stays registered until the TTL runs out, so a new
 * agent that starts within it re-registers and adopts them without a single move.
 *
 * @example
 *   // bin/flotilla: `flotilla agent --machine-id m1 --etcd-endpoints http://127.0.0.1:2379`
 *   await runAgent(process.argv.slice(3));
 */
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { daemonLogger, stopSignal, UsageError } from '../daemon/options.js';
import { quietIpServernameWarning, tlsMode } from '../daemon/tls.js';
import type { Machine } from '../proto/flotilla/v1/records.js';
import { openStore, type Store } from '../store/index.js';
import type { SupervisorTimings } from './units/supervisor/supervisor.js';
import { UnitManager, type AdoptedUnit } from './units/unit-manager.js';
import { AGENT_USAGE, parseAgentArgs, type AgentOptions } from './options.js';
import { AgentOps } from './ops.js';
import { EndpointPublisher } from './sync/endpoints.js';
import { Reconciler } from './sync/reconciler.js';
import {
  advertisedEndpoint,
  contactLimitMs,
  machineRecord,
  Registration,
} from './sync/registration.js';
import { StateReporter } from './sync/state-reporter.js';
import { storeSecretSource } from './sync/secret-reader.js';
import { startTailServer, type TailServer } from './logs/tail-server.js';
import { startServices, type Services } from './services.js';

export { AGENT_USAGE } from './options.js';

/** Knobs beyond the flags, for tests and benchmarks. */
export interface AgentTuning {
  /** Restart back-off and start timeout of supervisors. */
  readonly timings?: Partial<SupervisorTimings>;
  /** How often logs are checked against their cap. */
  readonly logCheckMs?: number;
  /** Lease renewal interval (default TTL/3). */
  readonly renewIntervalMs?: number;
}

/** Options of {@link Agent.close}. */
export interface AgentCloseOptions {
  /** Leave the units running and the lease to expire (an upgrade). Default: the flag's value. */
  readonly keepUnits?: boolean;
}

/** A running agent. */
export interface Agent {
  readonly machineId: string;
  readonly store: Store;
  readonly units: UnitManager;
  /** The Logs service's bound host:port. */
  readonly logsAddress: string;
  /** The metrics and health HTTP address, or undefined when not served. */
  readonly metricsAddress: string | undefined;
  /** The machine record as registered. */
  readonly machine: Machine;
  /** The units found running (or settled) from a previous agent, taken over as they were. */
  readonly adopted: readonly AdoptedUnit[];
  /** Resolves after the first registration (an agent started before etcd waits for it). */
  registered(): Promise<void>;
  /** Stops the agent; see the module comment for what happens to the units. Idempotent. */
  close(opts?: AgentCloseOptions): Promise<void>;
}

/**
 * Starts an agent. Resolves once the Logs service listens and adoption is done; registration
 * and the first reconcile pass follow as soon as etcd answers. Rejects (having cleaned up)
 * when the driver or the Logs address cannot be had.
 */
export async function startAgent(
  opts: AgentOptions,
  logger: Logger,
  tuning: AgentTuning = {},
): Promise<Agent> {
  const log = logger.child({ machine: opts.machineId });
  const store = openStore({
    endpoints: opts.endpoints,
    prefix: opts.prefix,
    ...(opts.etcdTls === undefined ? {} : { tls: opts.etcdTls }),
    ...(opts.etcdAuth === undefined ? {} : { auth: opts.etcdAuth }),
  });
  const ops = new AgentOps(store, opts.metricsListen !== undefined);
  let units: UnitManager;
  let tail: TailServer | undefined;
  let services: Services | undefined;
  try {
    units = await UnitManager.create({
      machineId: opts.machineId,
      stateDir: opts.stateDir,
      driver: opts.driver,
      usernsRemap: opts.usernsRemap ?? 'auto',
      onUserns: (text) => log.info(text),
      ...(opts.registry !== undefined
        ? { images: { registry: opts.registry, maxBytes: opts.imageStoreMaxBytes ?? 0 } }
        : {}),
      ...(tuning.timings !== undefined ? { timings: tuning.timings } : {}),
      ...(tuning.logCheckMs !== undefined ? { logCheckMs: tuning.logCheckMs } : {}),
      contactLimitMs: contactLimitMs(opts.leaseTtlSeconds, tuning.renewIntervalMs),
      secrets: storeSecretSource(store, opts.secretsKey),
    });
  } catch (err) {
    store.close();
    throw err;
  }
  // Built below; the reporter's callbacks reach them once they exist.
  const late: { reconciler?: Reconciler; registration?: Registration; machine?: Machine } = {};
  const reporter = new StateReporter(store, log.child({ component: 'states' }), {
    machineId: opts.machineId,
    lease: () => late.registration?.leaseId,
    isGlobal: (name) => late.reconciler?.isGlobal(name),
    verifyMs: opts.tickMs,
    onLeaseLost: () => {
      if (late.machine !== undefined) late.registration?.checkLease(late.machine);
    },
  });
  units.onState((state) => reporter.report(state));
  const endpoints = new EndpointPublisher(store, log.child({ component: 'endpoints' }), {
    machineId: opts.machineId,
    address: opts.publicIp,
    lease: () => late.registration?.leaseId,
  });
  units.onState((state) => endpoints.observe(state));
  if (ops.metrics !== undefined) units.onState(ops.metrics.unitState);
  let adopted: AdoptedUnit[];
  try {
    adopted = await units.adopt();
    tail = await startTailServer({
      listen: opts.logsListen,
      logs: units.logs,
      logger: log.child({ component: 'logs' }),
      ...(opts.logsTls === undefined ? {} : { tls: opts.logsTls }),
      ...(opts.logsAuth === undefined ? {} : { auth: opts.logsAuth }),
      readiness: ops.readiness,
      hasUnit: async (name) =>
        (late.reconciler?.known().has(name) ?? false) ||
        (await units.logs.tail(name, 1)).length > 0,
    });
    if (opts.metricsListen !== undefined) {
      await ops.listen(opts.metricsListen, {
        units: () => units.list(),
        logPath: (name) => units.logs.path(name),
        ...(units.images === undefined ? {} : { images: units.images }),
        services: () => services?.metrics(),
      });
    }
    services = await startServices(store, opts, log);
  } catch (err) {
    await ops.close();
    await tail?.close();
    await endpoints.close();
    await reporter.close();
    await units.close();
    store.close();
    throw err;
  }
  for (const unit of adopted) {
    log.info({ unit: unit.name, pid: unit.pid, running: unit.running }, 'adopted unit');
  }

  const startedAt = Date.now();
  const machine = {
    ...machineRecord(
      opts,
      units.driver.name,
      advertisedEndpoint(tail.address, opts.publicIp),
      startedAt,
    ),
    dnsEndpoint: services.dnsEndpoint,
  };
  late.machine = machine;
  const reg = new Registration(store, log.child({ component: 'presence' }), {
    machine,
    ttlSeconds: opts.leaseTtlSeconds,
    ...(tuning.renewIntervalMs !== undefined ? { renewIntervalMs: tuning.renewIntervalMs } : {}),
  });
  late.registration = reg;
  ops.follow(reg);
  const rec = new Reconciler(store, units, reporter, log.child({ component: 'reconcile' }), {
    machineId: opts.machineId,
    tickMs: opts.tickMs,
    connection: () => reg.connection(),
    stopOnDisconnectLimitMs: reg.stopOnDisconnectLimitMs(opts.leaseTtlSeconds),
    endpoints,
  });
  late.reconciler = rec;
  reg.presence.on((event) => {
    if (event.type === 'registered' || event.type === 'renewed')
      void units.recordContact(Date.now());
    if (event.type === 'registered') {
      reporter.rewriteAll();
      endpoints.rewriteAll();
      endpoints.removeStale().catch((err: unknown) => log.debug({ err }, 'stale endpoints: later'));
    }
    if (event.type === 'registered' || event.type === 'renewed') {
      rec.resume().catch((err: unknown) => log.debug({ err }, 'resume after reconnect failed'));
    }
    rec.schedule();
  });
  // StopOnDisconnect= deadlines are checked more often than the tick while cut off.
  const cutOffCheck = setInterval(() => {
    if (reg.connection().disconnected) rec.schedule();
  }, 250);
  const registeredOnce = reg.start();
  registeredOnce.catch(() => undefined);
  rec.start();
  const servicesOf = services;
  servicesOf.startMesh((meshProblems) => {
    // The record says which published ports this machine cannot serve (flotctl shows them).
    late.machine = { ...(late.machine ?? machine), meshProblems };
    reg.update(late.machine);
  });
  log.info(
    {
      etcd: opts.endpoints,
      prefix: store.keys.prefix,
      driver: units.driver.name,
      stateDir: opts.stateDir,
      logs: tail.address,
      metrics: ops.address,
      logsTls: tlsMode(opts.logsTls),
      logsAuth: logsAuthMode(opts),
      adopted: adopted.length,
    },
    'agent started',
  );
  if (logsAuthMode(opts) === 'none') {
    // Only with --allow-insecure-clients (agent/options.ts refuses it otherwise).
    log.warn(
      { logs: tail.address },
      "--allow-insecure-clients: the Logs service lets any client that reaches it read every unit's log (and units share this machine's network)",
    );
  }

  let closing: Promise<void> | undefined;
  const close = async (closeOpts: AgentCloseOptions): Promise<void> => {
    const keepUnits = closeOpts.keepUnits ?? opts.keepUnitsOnExit;
    clearInterval(cutOffCheck);
    await rec.close();
    if (keepUnits) {
      log.info('shutting down, leaving units running and the lease to expire');
      await units.close();
    } else {
      const names = units.list().map((s) => s.name);
      log.info({ units: names.length }, 'shutting down: stopping units');
      // Each unit leaves service (its endpoints deleted, then DrainSec=) before it stops.
      await Promise.all(
        names.map(async (name) => {
          const drainMs = await endpoints.withdraw(name);
          if (drainMs > 0) await new Promise((resolve) => setTimeout(resolve, drainMs));
          await units.stop(name);
        }),
      );
      await units.close();
    }
    await endpoints.close();
    await reporter.close();
    await reg.close(!keepUnits);
    await servicesOf.close();
    await tail.close();
    await ops.close();
    store.close();
    log.info('agent stopped');
  };
  return {
    machineId: opts.machineId,
    store,
    units,
    logsAddress: tail.address,
    metricsAddress: ops.address,
    machine,
    adopted,
    registered: () => registeredOnce,
    close: (closeOpts = {}) => (closing ??= close(closeOpts)),
  };
}

/** How the Logs service checks its clients, for the start-up log line. */
function logsAuthMode(
  opts: AgentOptions,
): 'token' | 'certificate' | 'token-or-certificate' | 'ca' | 'none' {
  const token = opts.logsAuth?.token !== undefined;
  const names = (opts.logsAuth?.clientNames ?? []).length > 0;
  if (token && names) return 'token-or-certificate';
  if (token) return 'token';
  if (names) return 'certificate';
  return opts.logsTls?.clientCa !== undefined ? 'ca' : 'none';
}

/**
 * The daemon: resolves after a clean shutdown (SIGTERM/SIGINT), or at once for `--help`.
 * Bad flags reject with UsageError (exit 2); failing to start (no runc where runc was asked
 * for, the Logs port taken) rejects too (exit 1).
 */
export async function runAgent(argv: string[]): Promise<void> {
  const parsed = parseAgentArgs(argv);
  if (parsed.help) {
    process.stdout.write(AGENT_USAGE);
    return;
  }
  const opts = parsed.options;
  const logger = daemonLogger('flotilla-agent', opts.logLevel);
  quietIpServernameWarning();
  const agent = await startAgent(opts, logger);
  const signal = await stopSignal();
  logger.info({ signal, keepUnits: opts.keepUnitsOnExit }, 'shutting down');
  await agent.close();
}

/** Run directly (`node dist/agent/main.js ...`): tests and benchmarks start agents so. */
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runAgent(process.argv.slice(2)).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`flotilla agent: ${err instanceof Error ? err.message : String(err)}\n`);
      if (err instanceof UsageError) process.stderr.write(AGENT_USAGE);
      process.exit(err instanceof UsageError ? 2 : 1);
    },
  );
}

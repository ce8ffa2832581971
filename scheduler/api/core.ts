/**
 * What both of a replica's transports serve from: the handlers' shared state ({@link
 * ApiCluster}: store, mirror, parsed files, admission), the gate every call passes (auth,
 * audit, metrics), the streams' context and the link to the agents. The gRPC server
 * (server.ts) and the HTTP listener (scheduler/http/) take one core, so a verb has one
 * implementation, one policy, one audit log and one set of limits whichever door it came
 * through.
 *
 * @example
 *   const core = openApiCore({ store, mirror, logger, policy });
 *   const grpc = await startApiServer({ ...opts, core });
 *   // ... and scheduler/http/server.ts's startHttpServer({ core, ... })
 *   await grpc.close(); await core.close();
 */
import type { Logger } from 'pino';
import type { RegistryOptions } from '../../registry/skopeo.js';
import type { ClientTls } from '../../daemon/tls.js';
import { ClusterMirror, type Store } from '../../store/index.js';
import { DefinitionCache } from '../view/snapshot.js';
import { AuditLog } from '../gate/audit.js';
import type { Policy } from '../gate/auth-policy.js';
import { ApiGuard, type ApiMetrics } from '../gate/guard.js';
import { DEFAULT_MAX_INSTANCES } from './admission.js';
import { AgentLink } from './agent-link.js';
import type { StreamContext } from './events.js';
import { InstanceRecords } from './instance-records.js';
import { AdmissionLanes } from './lanes.js';
import { QuotaGuard, type QuotaOptions } from './quota.js';
import type { ApiCluster } from './reads.js';

/** Options of {@link openApiCore}. */
export interface ApiCoreOptions {
  /** The etcd store to write through; the core never closes it (its owner does). */
  readonly store: Store;
  /** The replica's mirror; without one the core opens its own and closes it. */
  readonly mirror?: ClusterMirror;
  readonly logger: Logger;
  /** How log tails reach the agents' Logs services. Default: plaintext. */
  readonly agentTls?: ClientTls;
  /** Who may do what (scheduler/gate/auth.ts). Default: everyone everything. */
  readonly policy?: Policy;
  /** Append every write's audit line to this file. Default: none. */
  readonly auditLog?: string;
  /** Where request counts and durations go. Default: nowhere. */
  readonly metrics?: ApiMetrics;
  /** How submits reach registries to pin images. Default: REGISTRY_DEFAULTS. */
  readonly registry?: RegistryOptions;
  /** Every template's instance ceiling. Default {@link DEFAULT_MAX_INSTANCES}. */
  readonly maxInstances?: number;
  /** etcd's quota and the share past which writes are refused. Default 80% of 2 GiB. */
  readonly quota?: QuotaOptions;
}

/** The shared state of a replica's API, whichever transport serves it. */
export interface ApiCore {
  readonly cluster: ApiCluster;
  /** The streams' context; its `gate` is {@link gate}. */
  readonly ctx: StreamContext;
  readonly gate: ApiGuard;
  readonly agents: AgentLink;
  /** The policy the gate applies, if any (transports refuse tokens in plaintext off loopback). */
  readonly policy: Policy | undefined;
  /** Ends open streams, closes the mirror it opened and the audit log. */
  close(): Promise<void>;
}

/** Builds a core; throws (opening nothing) when the audit log cannot be opened. */
export function openApiCore(opts: ApiCoreOptions): ApiCore {
  const { store } = opts;
  const logger = opts.logger.child({ component: 'api' });
  const audit = opts.auditLog === undefined ? undefined : openAuditLog(opts.auditLog);
  const definitions = new DefinitionCache((u) =>
    logger.warn(
      { unit: u.name, problem: u.problem },
      'stored unit file does not parse; ignoring it',
    ),
  );
  const ownMirror = opts.mirror === undefined ? new ClusterMirror(store) : undefined;
  ownMirror?.onError((err) => logger.debug({ err }, 'cluster mirror: recovering'));
  const mirror = opts.mirror ?? (ownMirror as ClusterMirror);
  const cluster: ApiCluster = {
    store,
    mirror,
    definitions,
    instanceRecords: new InstanceRecords(),
    maxInstances: opts.maxInstances ?? DEFAULT_MAX_INSTANCES,
    quota: new QuotaGuard(store, opts.quota),
    lanes: new AdmissionLanes(),
    ...(opts.registry !== undefined ? { registry: opts.registry } : {}),
  };
  const gate = new ApiGuard({
    logger,
    ...(opts.policy === undefined ? {} : { policy: opts.policy }),
    ...(audit === undefined ? {} : { audit }),
    ...(opts.metrics === undefined ? {} : { metrics: opts.metrics }),
  });
  const ctx: StreamContext = {
    gate,
    store,
    mirror,
    definitions,
    logger,
    endpoints: store.options.endpoints,
    open: new Set(),
  };
  let closing: Promise<void> | undefined;
  return {
    cluster,
    ctx,
    gate,
    agents: new AgentLink(opts.agentTls),
    policy: opts.policy,
    close: () =>
      (closing ??= (async () => {
        for (const end of [...ctx.open]) end();
        await ownMirror?.close();
        audit?.close();
      })()),
  };
}

/** Opens the audit log, or says which file cannot be opened and why. */
function openAuditLog(path: string): AuditLog {
  try {
    return new AuditLog(path);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`--audit-log=${path}: cannot open it for appending (${why})`);
  }
}

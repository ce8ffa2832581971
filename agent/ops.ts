/**
 * What an operator watches an agent by (see {@link DaemonOps}): ready once its machine is
 * registered, while its lease is renewed, and while etcd answers; the Logs server's gRPC
 * health service says the same.
 */
import { DaemonOps } from '../daemon/ops.js';
import type { Store } from '../store/index.js';
import { AgentMetrics, type AgentMetricsSource } from './metrics.js';
import type { Registration } from './sync/registration.js';

/**
 * How fast an agent notices a hung etcd: a probe after 2 s without an answer (lease renewals
 * are answers, so a healthy agent probes about once per renewal), a failure after 2 s more.
 */
const AGENT_ETCD_HEALTH = { intervalMs: 2_000, probeTimeoutMs: 2_000 };

export class AgentOps extends DaemonOps<AgentMetrics> {
  private registration: Registration | undefined;

  constructor(store: Store, withMetrics: boolean) {
    super(store, withMetrics ? new AgentMetrics() : undefined, AGENT_ETCD_HEALTH);
  }

  protected notReady(): string[] {
    const reg = this.registration;
    if (reg === undefined || reg.leaseId === undefined) {
      return ['machine not registered in etcd yet'];
    }
    if (reg.connection().disconnected) {
      return ['cut off from etcd: the lease is not being renewed'];
    }
    return [];
  }

  /** The registration readiness follows, once it exists. */
  follow(registration: Registration): void {
    this.registration = registration;
    if (this.metrics !== undefined) this.onClose(registration.presence.on(this.metrics.presence));
  }

  /** Serves metrics and health over HTTP on `listen`, describing `source`. */
  listen(listen: string, source: AgentMetricsSource): Promise<string> {
    this.metrics?.attach(source);
    return this.serve(listen);
  }
}

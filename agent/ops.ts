/**
 * What an operator watches an agent by: readiness (registered, and its lease renewed lately,
 * which says etcd answers), shared by `/readyz` and the Logs server's gRPC health service,
 * and, with `--metrics-listen`, the Prometheus metrics and the HTTP endpoints.
 */
import {
  startMetricsServer,
  type MetricsServer,
  type Readiness,
} from '../daemon/metrics-server.js';
import type { Store } from '../store/index.js';
import { AgentMetrics, type AgentMetricsSource } from './metrics.js';
import type { Registration } from './sync/registration.js';

export class AgentOps {
  /** Present when metrics are served. */
  readonly metrics: AgentMetrics | undefined;
  private registration: Registration | undefined;
  private http: MetricsServer | undefined;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(store: Store, withMetrics: boolean) {
    this.metrics = withMetrics ? new AgentMetrics() : undefined;
    if (this.metrics !== undefined)
      this.unsubscribe.push(store.onRequest(this.metrics.etcdRequest));
  }

  /** Ready once registered and while the lease is renewed (etcd answers). */
  readonly readiness = (): Readiness => {
    const reg = this.registration;
    if (reg === undefined || reg.leaseId === undefined) {
      return { ready: false, reasons: ['machine not registered in etcd yet'] };
    }
    if (reg.connection().disconnected) {
      return { ready: false, reasons: ['cut off from etcd: the lease is not being renewed'] };
    }
    return { ready: true, reasons: [] };
  };

  /** The registration readiness follows, once it exists. */
  follow(registration: Registration): void {
    this.registration = registration;
    if (this.metrics !== undefined)
      this.unsubscribe.push(registration.presence.on(this.metrics.presence));
  }

  /** Serves metrics and health over HTTP on `listen`. */
  async listen(listen: string, source: AgentMetricsSource): Promise<string> {
    if (this.metrics === undefined) throw new Error('metrics were not enabled');
    this.metrics.attach(source);
    this.http = await startMetricsServer({
      listen,
      registry: this.metrics.registry,
      readiness: this.readiness,
    });
    return this.http.address;
  }

  get address(): string | undefined {
    return this.http?.address;
  }

  async close(): Promise<void> {
    for (const u of this.unsubscribe) u();
    await this.http?.close();
  }
}

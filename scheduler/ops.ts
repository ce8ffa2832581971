/**
 * What an operator watches a scheduler replica by: readiness (the mirror has listed the
 * cluster and etcd answers), shared by `/readyz` and the API's gRPC health service, and, with
 * `--metrics-listen`, the Prometheus metrics and the HTTP endpoints. Built before the API and
 * the engine (they report into it), served once they exist.
 */
import { EtcdHealth } from '../daemon/etcd-health.js';
import {
  startMetricsServer,
  type MetricsServer,
  type Readiness,
} from '../daemon/metrics-server.js';
import type { ClusterMirror, Store } from '../store/index.js';
import type { EngineStatus } from './leader/engine.js';
import { SchedulerMetrics } from './metrics.js';

export class SchedulerOps {
  /** Present when metrics are served. */
  readonly metrics: SchedulerMetrics | undefined;
  private readonly etcd: EtcdHealth;
  private synced = false;
  private http: MetricsServer | undefined;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    store: Store,
    private readonly mirror: ClusterMirror,
    withMetrics: boolean,
  ) {
    this.metrics = withMetrics ? new SchedulerMetrics() : undefined;
    this.etcd = new EtcdHealth(() => store.revision());
    this.unsubscribe.push(store.onRequest((r) => this.etcd.observe(r)));
    if (this.metrics !== undefined)
      this.unsubscribe.push(store.onRequest(this.metrics.etcdRequest));
    mirror.ready().then(
      () => (this.synced = true),
      () => undefined,
    );
    this.etcd.start();
  }

  /** Ready when the mirror has listed the cluster and etcd answers. */
  readonly readiness = (): Readiness => {
    const reasons: string[] = [];
    if (!this.synced) reasons.push('cluster cache not synced yet');
    if (!this.etcd.reachable()) reasons.push(this.etcd.why());
    return { ready: reasons.length === 0, reasons };
  };

  /** Serves metrics and health over HTTP on `listen`; returns the bound address. */
  async listen(listen: string, status: () => EngineStatus): Promise<string> {
    if (this.metrics === undefined) throw new Error('metrics were not enabled');
    this.metrics.attach({ mirror: this.mirror, status });
    this.http = await startMetricsServer({
      listen,
      registry: this.metrics.registry,
      readiness: this.readiness,
    });
    return this.http.address;
  }

  /** The HTTP address, when it listens. */
  get address(): string | undefined {
    return this.http?.address;
  }

  async close(): Promise<void> {
    this.etcd.close();
    for (const u of this.unsubscribe) u();
    await this.http?.close();
  }
}

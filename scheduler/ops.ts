/**
 * What an operator watches a scheduler replica by (see {@link DaemonOps}): ready once the
 * mirror has listed the cluster, and while etcd answers; the API's gRPC health service says
 * the same; the HTTP listener serves /metrics, /healthz and /readyz from it. Built before the API and the engine (they report into it), served once they exist.
 */
import { DaemonOps } from '../daemon/ops.js';
import type { ClusterMirror, Store } from '../store/index.js';
import type { EngineStatus } from './leader/engine.js';
import { SchedulerMetrics } from './metrics.js';

export class SchedulerOps extends DaemonOps<SchedulerMetrics> {
  private synced = false;

  constructor(
    store: Store,
    private readonly mirror: ClusterMirror,
    withMetrics: boolean,
  ) {
    super(store, withMetrics ? new SchedulerMetrics() : undefined);
    mirror.ready().then(
      () => (this.synced = true),
      () => undefined,
    );
  }

  protected notReady(): string[] {
    return this.synced ? [] : ['cluster cache not synced yet'];
  }

  /**
   * Points the cluster gauges at the mirror and the engine; the HTTP listener
   * (scheduler/http/) then serves them with health.
   */
  attach(status: () => EngineStatus): void {
    this.metrics?.attach({ mirror: this.mirror, status });
  }
}

/**
 * What an operator watches every daemon by: readiness (the daemon's own conditions, and
 * whether etcd answers), shared by `/readyz` and the daemon's gRPC health service, and, with
 * `--metrics-listen`, the Prometheus metrics and the HTTP endpoints. A daemon subclasses it
 * with the conditions only it knows (the scheduler: its cache has synced; the agent: it is
 * registered and its lease is renewed) and the source its gauges describe.
 */
import type { Registry } from 'prom-client';
import type { Store, StoreRequest } from '../store/index.js';
import { EtcdHealth, type EtcdHealthOptions } from './etcd-health.js';
import { watchLoad } from './load-metrics.js';
import { startMetricsServer, type MetricsServer, type Readiness } from './metrics-server.js';

/** A daemon's metrics as {@link DaemonOps} needs them. */
export interface DaemonMetrics {
  readonly registry: Registry;
  /** For `store.onRequest`: times and counts requests to etcd. */
  readonly etcdRequest: (r: StoreRequest) => void;
  /** The daemon's metric name prefix, e.g. `flotilla_scheduler_`. */
  readonly prefix: string;
}

export abstract class DaemonOps<M extends DaemonMetrics> {
  private readonly etcd: EtcdHealth;
  private http: MetricsServer | undefined;
  private readonly unsubscribe: (() => void)[] = [];

  /** `metrics` when they are served; `etcdHealth` tunes how fast a hung etcd is noticed. */
  constructor(
    store: Store,
    readonly metrics: M | undefined,
    etcdHealth: EtcdHealthOptions = {},
  ) {
    this.etcd = new EtcdHealth(() => store.ping(), etcdHealth);
    this.unsubscribe.push(store.onRequest((r) => this.etcd.observe(r)));
    if (metrics !== undefined) this.unsubscribe.push(store.onRequest(metrics.etcdRequest));
    if (metrics !== undefined) {
      this.unsubscribe.push(watchLoad(metrics.registry, metrics.prefix, store));
    }
    this.etcd.start();
  }

  /** Why this daemon is not ready, beyond etcd: empty when it is. Cheap: asked on every probe. */
  protected abstract notReady(): string[];

  /** Ready when the daemon's own conditions hold and etcd answers. */
  readonly readiness = (): Readiness => {
    const reasons = this.notReady();
    if (!this.etcd.reachable()) reasons.push(this.etcd.why());
    return { ready: reasons.length === 0, reasons };
  };

  /** Serves metrics and health over HTTP on `listen`; resolves to the bound address. */
  protected async serve(listen: string): Promise<string> {
    if (this.metrics === undefined) throw new Error('metrics were not enabled');
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

  /** Stops probing etcd and serving. */
  async close(): Promise<void> {
    this.etcd.close();
    for (const u of this.unsubscribe) u();
    await this.http?.close();
  }

  /** Calls `off` on close (for subscriptions a subclass makes). */
  protected onClose(off: () => void): void {
    this.unsubscribe.push(off);
  }
}

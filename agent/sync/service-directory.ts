/**
 * The agent's view of the cluster's services (agent/mesh/catalog.ts's ServiceCatalog over
 * etcd): one watch of `services/` (one small record per service), and one watch of
 * `endpoints/<service>/` per service that this machine routes (it publishes a port) or
 * resolves (DNS was asked about it), shared by both and closed when neither needs it. Nothing
 * here watches every endpoint of the cluster, so an endpoint change costs one event on each
 * machine that routes or resolves its service, and nothing elsewhere.
 */
import type { Logger } from 'pino';
import type { Endpoint, Service } from '../../proto/flotilla/v1/records.js';
import { codecs, Listeners, WatchCache, type Store } from '../../store/index.js';
import type { EndpointView, ServiceCatalog } from '../mesh/catalog.js';

/** Health values of an endpoint that may take traffic (the record exists only while it serves). */
const SERVING_HEALTH: ReadonlySet<string> = new Set(['', 'passing', 'none']);

/** One service's endpoint watch and who holds it. */
class EndpointWatch implements EndpointView {
  refs = 0;
  private cached: readonly Endpoint[] | undefined;
  private readonly changes = new Listeners<void>();

  constructor(readonly cache: WatchCache<Endpoint>) {
    cache.on(() => {
      this.cached = undefined;
      this.changes.emit();
    });
  }

  ready(): Promise<void> {
    return this.cache.ready();
  }

  serving(): readonly Endpoint[] {
    // Recomputed once per change, not per connection or per query.
    this.cached ??= this.cache
      .entries()
      .map((e) => e.value)
      .filter((e) => SERVING_HEALTH.has(e.health) && e.port > 0 && e.address !== '');
    return this.cached;
  }

  onChange(fn: () => void): () => void {
    return this.changes.on(fn);
  }
}

/** Options of a {@link ServiceDirectory}. */
export interface ServiceDirectoryOptions {
  /** Services whose endpoints may be watched at once; acquiring more throws. Default 1,024. */
  readonly maxWatched?: number;
}

/** The cluster's services, and the endpoints of those this agent routes or resolves. */
export class ServiceDirectory implements ServiceCatalog {
  private readonly servicesCache: WatchCache<Service>;
  private readonly byName = new Map<string, Service>();
  private readonly serviceChanges = new Listeners<void>();
  private readonly watches = new Map<string, EndpointWatch>();
  private readonly maxWatched: number;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    opts: ServiceDirectoryOptions = {},
  ) {
    this.maxWatched = opts.maxWatched ?? 1_024;
    this.servicesCache = new WatchCache(store, {
      prefix: store.keys.dir('service'),
      codec: codecs.service,
    });
    this.servicesCache.on((event) => {
      const changes = event.type === 'resync' ? event.changes : [event];
      for (const change of changes) {
        const name = store.keys.parse(change.key)?.name;
        if (name === undefined) continue;
        if (change.type === 'put') this.byName.set(name, change.value);
        else this.byName.delete(name);
      }
      this.serviceChanges.emit();
    });
    // A bad record is dropped by the cache and reported here; the agent carries on.
    this.servicesCache.onError((err) => this.log.warn({ err: err.message }, 'services watch'));
  }

  /** Resolves after the first listing of services/. */
  ready(): Promise<void> {
    return this.servicesCache.ready();
  }

  services(): ReadonlyMap<string, Service> {
    return this.byName;
  }

  onServices(fn: () => void): () => void {
    return this.serviceChanges.on(fn);
  }

  /** How many services' endpoints are watched now (a gauge). */
  get watched(): number {
    return this.watches.size;
  }

  acquire(service: string): EndpointView {
    if (this.closed) throw new Error('the service directory is closed');
    let watch = this.watches.get(service);
    if (watch === undefined) {
      if (this.watches.size >= this.maxWatched) {
        throw new Error(
          `already following the endpoints of ${this.maxWatched} services: release one first`,
        );
      }
      const cache = new WatchCache(this.store, {
        prefix: this.store.keys.endpointsOf(service),
        codec: codecs.endpoint,
      });
      cache.onError((err) => this.log.warn({ service, err: err.message }, 'endpoints watch'));
      watch = new EndpointWatch(cache);
      this.watches.set(service, watch);
    }
    watch.refs++;
    return watch;
  }

  release(service: string): void {
    const watch = this.watches.get(service);
    if (watch === undefined) return;
    if (--watch.refs > 0) return;
    this.watches.delete(service);
    void watch.cache.close();
  }

  /** Closes every watch. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const caches = [this.servicesCache, ...[...this.watches.values()].map((w) => w.cache)];
    this.watches.clear();
    this.serviceChanges.clear();
    await Promise.all(caches.map((c) => c.close()));
  }
}

/**
 * The agent's view of the cluster's services (agent/mesh/catalog.ts's ServiceCatalog over
 * etcd): one watch of `services/` (one small record per service), and, from the first service
 * this machine routes (it publishes a port) or resolves (DNS was asked about it), one watch of
 * every endpoint, indexed by service. Endpoints are keyed by the machine that publishes them
 * (`unit-endpoints/<machine>/<service>/...`, so each machine's etcd role may write only its
 * own), which leaves no per-service prefix to watch: an endpoint change costs one event on
 * each machine that follows any service, and a lookup stays one map read. Records of agents
 * of earlier versions (`endpoints/<service>/<machine>/...`) are watched and indexed alike
 * until those agents restart.
 */
import type { Logger } from 'pino';
import type { Endpoint, Service } from '../../proto/flotilla/v1/records.js';
import { codecs, Listeners, SortedMap, WatchCache, type Store } from '../../store/index.js';
import type { EndpointView, ServiceCatalog } from '../mesh/catalog.js';

/** Health values of an endpoint that may take traffic (the record exists only while it serves). */
const SERVING_HEALTH: ReadonlySet<string> = new Set(['', 'passing', 'none']);

/** One endpoint as indexed: its record and the key it came from. */
interface Indexed {
  readonly key: string;
  readonly value: Endpoint;
}

/** Every endpoint of the cluster (both key layouts), by service. */
class EndpointIndex {
  /** Service -> `<machine>/<unit>/<port-name>` -> endpoint, in that order. */
  readonly byService = new Map<string, SortedMap<Indexed>>();
  /** Emits the services a watch event changed. */
  readonly changes = new Listeners<ReadonlySet<string>>();
  private readonly caches: WatchCache<Endpoint>[];

  constructor(
    private readonly store: Store,
    log: Logger,
  ) {
    const prefixes = [store.keys.dir('endpoint'), store.keys.legacyDir('endpoint')];
    this.caches = prefixes.map((prefix) => {
      const cache = new WatchCache(store, { prefix, codec: codecs.endpoint });
      cache.on((event) => this.index(event.type === 'resync' ? event.changes : [event]));
      cache.onError((err) => log.warn({ prefix, err: err.message }, 'endpoints watch'));
      return cache;
    });
  }

  async ready(): Promise<void> {
    await Promise.all(this.caches.map((c) => c.ready()));
  }

  close(): Promise<void[]> {
    this.changes.clear();
    return Promise.all(this.caches.map((c) => c.close()));
  }

  private index(
    changes: readonly { type: 'put' | 'delete'; key: string; value?: Endpoint }[],
  ): void {
    const touched = new Set<string>();
    for (const change of changes) {
      const parsed = this.store.keys.parse(change.key);
      if (parsed?.kind !== 'endpoint' || parsed.service === undefined) continue;
      const { service, machine = '', name, port = '' } = parsed;
      const at = `${machine}/${name}/${port}`;
      let of = this.byService.get(service);
      if (change.type === 'put' && change.value !== undefined) {
        if (of === undefined) this.byService.set(service, (of = new SortedMap()));
        of.set(at, { key: change.key, value: change.value });
      } else if (of?.get(at)?.key === change.key) {
        // Only the entry of the deleted key: a legacy and a new key may hold one endpoint.
        of.delete(at);
        if (of.size === 0) this.byService.delete(service);
      }
      touched.add(service);
    }
    if (touched.size > 0) this.changes.emit(touched);
  }
}

/** One service's endpoints, as the index holds them, and who holds the view. */
class EndpointWatch implements EndpointView {
  refs = 0;
  private cached: readonly Endpoint[] | undefined;
  private readonly changes = new Listeners<void>();
  readonly unsubscribe: () => void;

  constructor(
    private readonly index: EndpointIndex,
    private readonly service: string,
  ) {
    this.unsubscribe = index.changes.on((services) => {
      if (!services.has(service)) return;
      this.cached = undefined;
      this.changes.emit();
    });
  }

  ready(): Promise<void> {
    return this.index.ready();
  }

  serving(): readonly Endpoint[] {
    // Recomputed once per change, not per connection or per query.
    this.cached ??= [...(this.index.byService.get(this.service)?.entries() ?? [])]
      .map(([, e]) => e.value)
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
  /** Every endpoint, by service: opened by the first {@link acquire}. */
  private endpoints: EndpointIndex | undefined;
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
      this.endpoints ??= new EndpointIndex(this.store, this.log);
      watch = new EndpointWatch(this.endpoints, service);
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
    watch.unsubscribe();
  }

  /** Closes every watch. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    this.watches.clear();
    this.serviceChanges.clear();
    await Promise.all([this.servicesCache.close(), this.endpoints?.close()]);
  }
}

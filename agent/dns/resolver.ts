/**
 * Which services' endpoints the DNS server follows: a service's endpoints are watched only
 * once someone asks about it, kept while asked about, and released after `idleMs` without a
 * question; at most `maxServices` are followed for DNS at once (the least recently asked is
 * released to make room). Names of services that do not exist never open a watch: the
 * services list (always followed, one small record per service) answers those.
 */
import type { Endpoint, Service } from '../../proto/flotilla/v1/records.js';
import type { EndpointView, ServiceCatalog } from '../mesh/catalog.js';

/** Options of a {@link ServiceResolver}. */
export interface ServiceResolverOptions {
  /** Services followed for DNS at once at most. Default 256. */
  readonly maxServices?: number;
  /** A service nobody asked about for this long is no longer followed. Default 5 minutes. */
  readonly idleMs?: number;
  /** How long a first question waits for the endpoints' first listing. Default 2 s. */
  readonly readyTimeoutMs?: number;
}

interface Followed {
  readonly view: EndpointView;
  lastAskedAt: number;
  ready: boolean;
}

/** Finds services by DNS name and their serving endpoints. */
export class ServiceResolver {
  private readonly followed = new Map<string, Followed>();
  private lower = new Map<string, string>();
  private readonly unsubscribe: () => void;
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly maxServices: number;
  private readonly idleMs: number;
  private readonly readyTimeoutMs: number;

  constructor(
    private readonly catalog: ServiceCatalog,
    opts: ServiceResolverOptions = {},
  ) {
    this.maxServices = opts.maxServices ?? 256;
    this.idleMs = opts.idleMs ?? 5 * 60_000;
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 2_000;
    this.unsubscribe = catalog.onServices(() => this.reindex());
    this.reindex();
    this.sweepTimer = setInterval(() => this.sweep(), Math.max(1_000, this.idleMs / 4));
    this.sweepTimer.unref();
  }

  /** The real name of the service whose lower-cased name is `lower`. */
  serviceNamed(lower: string): string | undefined {
    return this.lower.get(lower);
  }

  service(name: string): Service | undefined {
    return this.catalog.services().get(name);
  }

  /** How many services DNS follows now. */
  get size(): number {
    return this.followed.size;
  }

  /** The serving endpoints of `service`, following it from now on. */
  async serving(service: string): Promise<readonly Endpoint[]> {
    let entry = this.followed.get(service);
    if (entry === undefined) {
      if (this.followed.size >= this.maxServices) this.evictOldest();
      entry = { view: this.catalog.acquire(service), lastAskedAt: Date.now(), ready: false };
      this.followed.set(service, entry);
    }
    entry.lastAskedAt = Date.now();
    if (!entry.ready) {
      await withTimeout(entry.view.ready(), this.readyTimeoutMs);
      entry.ready = true;
    }
    return entry.view.serving();
  }

  close(): void {
    this.unsubscribe();
    clearInterval(this.sweepTimer);
    for (const name of this.followed.keys()) this.catalog.release(name);
    this.followed.clear();
  }

  private reindex(): void {
    const lower = new Map<string, string>();
    for (const name of this.catalog.services().keys()) lower.set(name.toLowerCase(), name);
    this.lower = lower;
    // A service that is gone is no longer followed.
    for (const name of [...this.followed.keys()]) {
      if (!this.catalog.services().has(name)) this.forget(name);
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const [name, entry] of [...this.followed]) {
      if (now - entry.lastAskedAt >= this.idleMs) this.forget(name);
    }
  }

  private evictOldest(): void {
    let oldest: [string, number] | undefined;
    for (const [name, entry] of this.followed) {
      if (oldest === undefined || entry.lastAskedAt < oldest[1]) oldest = [name, entry.lastAskedAt];
    }
    if (oldest !== undefined) this.forget(oldest[0]);
  }

  private forget(name: string): void {
    if (!this.followed.delete(name)) return;
    this.catalog.release(name);
  }
}

function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`endpoints not listed within ${ms} ms`)), ms);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

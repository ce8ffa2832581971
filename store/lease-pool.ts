/**
 * LeasePool: many leases of one TTL kept alive together, for a process that stands in for
 * thousands of machines (the scale benchmark). They are renewed as an agent's are, by the
 * store's lease worker (store/lease-keeper.ts): its own connection and event loop, each lease
 * renewed from its own timer, so the benchmark measures the lease path the agents use.
 *
 * A real machine renews its one lease on its agent's own LeaseKeepAlive stream, and etcd
 * answers a stream's renewals one at a time, each only once it has applied every write
 * committed before it (etcd gives up after 1 s: "waiting for the applied index took too
 * long"). On ONE stream, 10,000 leases renewed every 3.3 s wait for the apply in single
 * file: during a big scale etcd applies slower than they arrive, and every lease was lost
 * within two minutes, where 10,000 agents' renewals would not have waited for each other.
 * So the pool spreads its leases over `streams` streams of the lease worker, round robin.
 *
 * The pool does not re-register anything: a lease etcd reports gone is dropped and reported
 * as 'lost', and what to do about it is the holder's business.
 */
import type { Store } from './client.js';
import { StoreError } from './errors.js';
import type { KeptEvent } from './lease-keeper.js';
import { Listeners, type Unsubscribe } from './listeners.js';

/** Options of a {@link LeasePool}; defaults are filled by the constructor. */
export interface LeasePoolOptions {
  /** TTL of every lease the pool grants, whole seconds. Default 10. */
  ttlSeconds?: number;
  /** Pause between two renewal rounds. Default TTL/3, as a Presence renews. */
  renewIntervalMs?: number;
  /** LeaseKeepAlive streams the leases are spread over (round robin). Default 1. */
  streams?: number;
}

/** What a pool reports. `at` is Unix ms. */
export type LeasePoolEvent =
  /** etcd answered a renewal with TTL <= 0: the lease is gone and no longer renewed. */
  | { readonly type: 'lost'; readonly lease: bigint; readonly at: number }
  /**
   * Renewals failed (etcd unreachable, no answer in time); retried. Reported at most once per
   * renewal interval, with how many failed since the last report.
   */
  | {
      readonly type: 'error';
      readonly error: StoreError;
      readonly at: number;
      readonly failures: number;
    };

/**
 * Leases granted by {@link grant} are renewed until {@link release}d (they then expire at
 * TTL, as when their holder dies) or {@link revoke}d (their keys vanish at once).
 *
 * @example
 *   const pool = new LeasePool(store, { ttlSeconds: 10 });
 *   const lease = await pool.grant();
 *   await store.put(store.keys.machine(id), value, { lease });
 *   pool.release(lease); // the machine "dies": its record vanishes within the TTL
 */
export class LeasePool {
  readonly ttlSeconds: number;
  private readonly renewIntervalMs: number;
  /** Kept leases -> Unix ms at which the renewal etcd last confirmed for it was sent. */
  private readonly kept = new Map<bigint, { renewedAt: number; stop: () => void }>();
  private readonly events = new Listeners<LeasePoolEvent>();
  private failures = 0;
  private lastErrorAt = -Infinity;
  private closed = false;
  private readonly streams: number;
  private granted = 0;

  constructor(
    private readonly store: Store,
    opts: LeasePoolOptions = {},
  ) {
    this.ttlSeconds = opts.ttlSeconds ?? 10;
    if (!Number.isInteger(this.ttlSeconds) || this.ttlSeconds < 1) {
      throw new StoreError('invalid', 'lease TTL must be a whole number >= 1 s');
    }
    this.renewIntervalMs = opts.renewIntervalMs ?? (this.ttlSeconds * 1000) / 3;
    this.streams = opts.streams ?? 1;
    if (!Number.isInteger(this.streams) || this.streams < 1) {
      throw new StoreError('invalid', 'lease streams must be a whole number >= 1');
    }
  }

  /** How many leases are being renewed. */
  get size(): number {
    return this.kept.size;
  }

  /** Subscribes to events; returns the unsubscribe function. */
  on(fn: (event: LeasePoolEvent) => void): Unsubscribe {
    return this.events.on(fn);
  }

  /** Grants a lease of the pool's TTL and renews it from the next round on. */
  async grant(): Promise<bigint> {
    if (this.closed) throw new StoreError('closed', 'lease pool is closed');
    const sentAt = Date.now();
    const { lease } = await this.store.grantLease(this.ttlSeconds);
    if (this.closed) throw new StoreError('closed', 'lease pool is closed');
    const stream = this.granted++ % this.streams;
    const stop = this.store.leases.keep(
      lease,
      { intervalMs: this.renewIntervalMs, deadlineMs: this.renewIntervalMs, stream },
      (e) => this.onKept(lease, e),
    );
    this.kept.set(lease, { renewedAt: sentAt, stop });
    return lease;
  }

  /**
   * Unix ms when the last renewal etcd confirmed was SENT (or the grant), so that
   * `lastRenewedAt + TTL` never overestimates how long etcd keeps the keys. Undefined for a
   * lease the pool does not renew.
   */
  lastRenewedAt(lease: bigint): number | undefined {
    return this.kept.get(lease)?.renewedAt;
  }

  /** Stops renewing `lease`: etcd expires it, and deletes its keys, within the TTL. */
  release(lease: bigint): boolean {
    const k = this.kept.get(lease);
    k?.stop();
    return this.kept.delete(lease);
  }

  /** Stops renewing `lease` and revokes it, so its keys vanish now. */
  async revoke(lease: bigint): Promise<void> {
    this.release(lease);
    await this.store.revokeLease(lease);
  }

  /** Stops renewing; with `revoke` every kept lease is revoked (else they expire at TTL). */
  async close(opts: { revoke?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const leases = [...this.kept.keys()];
    for (const k of this.kept.values()) k.stop();
    this.kept.clear();
    if (opts.revoke === true && !this.store.isClosed) {
      // An unreachable etcd lets them expire instead.
      await Promise.all(leases.map((l) => this.store.revokeLease(l).catch(() => undefined)));
    }
    this.events.clear();
  }

  private onKept(lease: bigint, e: KeptEvent): void {
    const k = this.kept.get(lease);
    if (k === undefined || this.closed) return;
    if (e.type === 'renewed') {
      k.renewedAt = e.sentAt;
    } else if (e.type === 'lost') {
      this.kept.delete(lease);
      this.events.emit({ type: 'lost', lease, at: e.at });
    } else {
      // Thousands of leases fail together when etcd goes away: one report per interval.
      this.failures += 1;
      const now = Date.now();
      if (now - this.lastErrorAt < this.renewIntervalMs) return;
      this.lastErrorAt = now;
      const failures = this.failures;
      this.failures = 0;
      this.events.emit({ type: 'error', error: e.error, at: now, failures });
    }
  }
}

/**
 * LeasePool: many leases of one TTL kept alive together over ONE LeaseKeepAlive stream. A
 * {@link Presence} opens a keepalive round trip per lease per renewal, which is right for an
 * agent holding one lease but costs thousands of calls per renewal interval for a process
 * that stands in for thousands of machines (the scale benchmark). Here every interval writes
 * each lease's id on the shared stream and reads etcd's answers back as they come.
 *
 * The pool does not re-register anything: a lease etcd reports gone is dropped and reported
 * as 'lost', and what to do about it is the holder's business.
 */
import type { ILeaseKeepAliveRequest, ILeaseKeepAliveResponse, IDuplexStream } from 'etcd3';
import { big, type Store } from './client.js';
import { StoreError, toStoreError } from './errors.js';
import { Listeners, Waker, type Unsubscribe } from './listeners.js';

/** Options of a {@link LeasePool}; defaults are filled by the constructor. */
export interface LeasePoolOptions {
  /** TTL of every lease the pool grants, whole seconds. Default 10. */
  ttlSeconds?: number;
  /** Pause between two renewal rounds. Default TTL/3, as a Presence renews. */
  renewIntervalMs?: number;
}

/** What a pool reports. `at` is Unix ms. */
export type LeasePoolEvent =
  /** etcd answered a renewal with TTL <= 0: the lease is gone and no longer renewed. */
  | { readonly type: 'lost'; readonly lease: bigint; readonly at: number }
  /** The keepalive stream failed; the next round opens a new one. */
  | { readonly type: 'error'; readonly error: StoreError; readonly at: number };

type KeepAliveStream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>;

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
  private readonly kept = new Map<bigint, number>();
  /** Send times of renewals not answered yet, per lease, oldest first (etcd answers in order). */
  private readonly unanswered = new Map<bigint, number[]>();
  private readonly events = new Listeners<LeasePoolEvent>();
  private readonly waker = new Waker();
  private stream: KeepAliveStream | undefined;
  private closed = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly store: Store,
    opts: LeasePoolOptions = {},
  ) {
    this.ttlSeconds = opts.ttlSeconds ?? 10;
    if (!Number.isInteger(this.ttlSeconds) || this.ttlSeconds < 1) {
      throw new StoreError('invalid', 'lease TTL must be a whole number >= 1 s');
    }
    this.renewIntervalMs = opts.renewIntervalMs ?? (this.ttlSeconds * 1000) / 3;
    this.loop = this.run();
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
    this.kept.set(lease, sentAt);
    return lease;
  }

  /**
   * Unix ms when the last renewal etcd confirmed was SENT (or the grant), so that
   * `lastRenewedAt + TTL` never overestimates how long etcd keeps the keys. Undefined for a
   * lease the pool does not renew.
   */
  lastRenewedAt(lease: bigint): number | undefined {
    return this.kept.get(lease);
  }

  /** Stops renewing `lease`: etcd expires it, and deletes its keys, within the TTL. */
  release(lease: bigint): boolean {
    this.unanswered.delete(lease);
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
    this.waker.wake();
    await this.loop;
    this.dropStream();
    const leases = [...this.kept.keys()];
    this.kept.clear();
    if (opts.revoke === true && !this.store.isClosed) {
      // An unreachable etcd lets them expire instead.
      await Promise.all(leases.map((l) => this.store.revokeLease(l).catch(() => undefined)));
    }
    this.events.clear();
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      await this.waker.sleep(this.renewIntervalMs);
      if (this.closed || this.kept.size === 0) continue;
      try {
        const stream = this.stream ?? (await this.openStream());
        const sentAt = Date.now();
        for (const lease of this.kept.keys()) {
          const times = this.unanswered.get(lease);
          if (times === undefined) this.unanswered.set(lease, [sentAt]);
          else times.push(sentAt);
          stream.write({ ID: lease.toString() });
        }
      } catch (err) {
        this.fail(err);
      }
    }
  }

  private async openStream(): Promise<KeepAliveStream> {
    const stream = await this.store.call(
      undefined,
      (c) => c.leaseClient.leaseKeepAlive(),
      'lease-keepalive',
    );
    this.stream = stream;
    stream.on('data', (res) => this.onAnswer(res));
    stream.on('error', (err) => this.stream === stream && this.fail(err));
    stream.on('end', () => {
      if (this.stream === stream) this.fail(new StoreError('unavailable', 'keepalive ended'));
    });
    return stream;
  }

  private onAnswer(res: ILeaseKeepAliveResponse): void {
    const lease = big(res.ID);
    const sentAt = this.unanswered.get(lease)?.shift();
    if (sentAt === undefined || !this.kept.has(lease)) return; // released since it was sent
    if (big(res.TTL) <= 0n) {
      this.release(lease);
      this.events.emit({ type: 'lost', lease, at: Date.now() });
      return;
    }
    this.kept.set(lease, sentAt);
  }

  /** Drops the stream so that the next round opens a fresh one, and reports why. */
  private fail(err: unknown): void {
    this.dropStream();
    if (!this.closed) {
      this.events.emit({ type: 'error', error: toStoreError(err), at: Date.now() });
    }
  }

  private dropStream(): void {
    const stream = this.stream;
    this.stream = undefined;
    this.unanswered.clear(); // what was sent on it will not be answered
    stream?.cancel();
  }
}

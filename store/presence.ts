/**
 * Presence: a key that exists exactly while its holder is alive and in touch with etcd. The
 * key lives under a lease that the store's lease worker renews every TTL/3 (lease-worker.ts,
 * failing over between endpoints); when the holder dies the lease expires and etcd deletes the
 * key, which is how the leader learns that a machine is lost.
 * When the lease is lost while the holder lives (it expired during a partition, or someone
 * revoked it), the presence grants a new one and writes its keys again.
 */
import type { Store } from './client.js';
import { StoreError, toStoreError } from './errors.js';
import type { KeptEvent } from './lease-keeper.js';
import { Listeners, Waker, type Unsubscribe } from './listeners.js';

/** Options of a {@link Presence}; defaults are filled by the constructor. */
export interface PresenceOptions {
  /** The presence key, e.g. `keys.machine(id)`. */
  key: string;
  /** Its value, e.g. an encoded Machine record. */
  value: string | Buffer;
  /** Lease TTL in whole seconds. Default 10. */
  ttlSeconds?: number;
  /** Pause between renewals. Default TTL/3. */
  renewIntervalMs?: number;
  /**
   * Pause before retrying a failed renewal or registration (every endpoint was tried).
   * Default min(1000, renewInterval/2).
   */
  retryIntervalMs?: number;
}

/** What a presence reports. `at` is Unix ms. */
export type PresenceEvent =
  /** Keys written under a new lease (the first time, and after every loss). */
  | { readonly type: 'registered'; readonly leaseId: bigint; readonly at: number }
  /**
   * etcd confirmed the lease; it lives at least until `at` + TTL. `sinceLastMs`: from the
   * previous confirmed renewal (or the registration) to this one's sending, the time the
   * lease ran unconfirmed; `failedAttempts`: attempts that failed in between.
   */
  | {
      readonly type: 'renewed';
      readonly leaseId: bigint;
      readonly at: number;
      readonly sinceLastMs: number;
      readonly failedAttempts: number;
    }
  /** The lease is gone (expired or revoked) and etcd deleted its keys; re-registering next. */
  | { readonly type: 'lost'; readonly leaseId: bigint; readonly at: number }
  /** A renewal or registration failed (etcd unreachable, ...) after `attemptMs`; retrying. */
  | {
      readonly type: 'error';
      readonly error: StoreError;
      readonly at: number;
      readonly attemptMs: number;
    };

/** Options of {@link Presence.close}. */
export interface PresenceCloseOptions {
  /** Revoke the lease so the keys vanish now, instead of at TTL. Default true. */
  revoke?: boolean;
}

/**
 * A key kept alive under a lease, plus any other keys that share its fate
 * ({@link putUnderLease}: the agent's `states/<name>`).
 *
 * @example
 *   const presence = new Presence(store, { key: keys.machine(id), value: encode(machine) });
 *   presence.on((e) => e.type === 'lost' && log.warn('lease lost, re-registering'));
 *   await presence.start();
 */
export class Presence {
  readonly key: string;
  readonly ttlSeconds: number;
  private readonly renewIntervalMs: number;
  private readonly retryIntervalMs: number;
  private value: Buffer;
  private readonly extra = new Map<string, Buffer>();
  private readonly events = new Listeners<PresenceEvent>();
  private readonly waker = new Waker();
  private lease: bigint | undefined;
  private renewedAt: number | undefined;
  /** Attempts that failed since the last one that worked. */
  private failedAttempts = 0;
  private closed = false;
  private loop: Promise<void> | undefined;
  private stopKeeping: (() => void) | undefined;
  private firstRegistration: Promise<void> | undefined;
  private resolveFirst: (() => void) | undefined;
  private rejectFirst: ((err: StoreError) => void) | undefined;

  constructor(
    private readonly store: Store,
    opts: PresenceOptions,
  ) {
    this.key = opts.key;
    this.value = toBuffer(opts.value);
    this.ttlSeconds = opts.ttlSeconds ?? 10;
    if (!Number.isInteger(this.ttlSeconds) || this.ttlSeconds < 1) {
      throw new StoreError('invalid', `lease TTL must be a whole number >= 1 s`);
    }
    this.renewIntervalMs = opts.renewIntervalMs ?? (this.ttlSeconds * 1000) / 3;
    this.retryIntervalMs = opts.retryIntervalMs ?? Math.min(1000, this.renewIntervalMs / 2);
  }

  /** The current lease id, or undefined while not registered. */
  get leaseId(): bigint | undefined {
    return this.lease;
  }

  /**
   * Unix ms when the last successful grant or renewal was SENT (not answered), so that
   * `lastRenewedAt + TTL` never overestimates how long etcd keeps the keys: what
   * StopOnDisconnect measures from. Undefined before the first registration.
   */
  get lastRenewedAt(): number | undefined {
    return this.renewedAt;
  }

  /** Subscribes to events; returns the unsubscribe function. */
  on(fn: (event: PresenceEvent) => void): Unsubscribe {
    return this.events.on(fn);
  }

  /**
   * Starts the keepalive loop; resolves after the first registration. Until then it retries
   * (emitting 'error' events), so an agent started before etcd simply waits. Rejects only if
   * closed first. Calling it again returns the same promise.
   */
  start(): Promise<void> {
    if (this.firstRegistration !== undefined) return this.firstRegistration;
    this.firstRegistration = new Promise<void>((resolve, reject) => {
      this.resolveFirst = resolve;
      this.rejectFirst = reject;
    });
    this.firstRegistration.catch(() => undefined); // close() before registering: not unhandled
    this.loop = this.run();
    return this.firstRegistration;
  }

  /** Rewrites the presence key's value under the current lease (kept for re-registration). */
  async update(value: string | Buffer): Promise<void> {
    this.value = toBuffer(value);
    await this.writeUnderLease(this.key, this.value);
  }

  /**
   * Writes `key` under the same lease, so it vanishes with the presence, and remembers it so
   * it is written again after a re-registration. While unregistered it is only remembered.
   */
  async putUnderLease(key: string, value: string | Buffer): Promise<void> {
    const buf = toBuffer(value);
    this.extra.set(key, buf);
    await this.writeUnderLease(key, buf);
  }

  /** Forgets a key written with {@link putUnderLease} and deletes it. */
  async deleteUnderLease(key: string): Promise<void> {
    this.extra.delete(key);
    await this.store.delete(key);
  }

  /** Stops renewing; with `revoke` (default) revokes the lease so every key vanishes now. */
  async close(opts: PresenceCloseOptions = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.waker.wake();
    await this.loop;
    this.stopKeeping?.();
    this.rejectFirst?.(new StoreError('closed', `presence ${this.key} closed before registering`));
    const lease = this.lease;
    this.lease = undefined;
    if ((opts.revoke ?? true) && lease !== undefined && !this.store.isClosed) {
      await this.store.revokeLease(lease, this.key).catch(() => undefined); // an unreachable etcd lets the lease expire instead
    }
    this.events.clear();
  }

  private async writeUnderLease(key: string, value: Buffer): Promise<void> {
    const lease = this.lease;
    if (lease === undefined || this.closed) return;
    try {
      await this.store.put(key, value, { lease });
    } catch (err) {
      const error = toStoreError(err, key);
      if (error.code === 'lease-lost') this.markLost(lease);
      throw error;
    }
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      if (this.lease === undefined) {
        const ok = await this.attempt(() => this.register());
        if (!ok) await this.waker.sleep(this.retryIntervalMs);
        continue;
      }
      // The lease worker renews; this loop wakes when the lease is lost or at close().
      await this.waker.sleep(60_000);
    }
  }

  /** Runs one step, reporting its failure as an 'error' event; resolves to whether it worked. */
  private async attempt(step: () => Promise<void>): Promise<boolean> {
    const started = Date.now();
    try {
      await step();
      this.failedAttempts = 0;
      return true;
    } catch (err) {
      if (this.closed) return false;
      this.failedAttempts += 1;
      const at = Date.now();
      const error = toStoreError(err, this.key);
      this.events.emit({ type: 'error', error, at, attemptMs: at - started });
      return false;
    }
  }

  /** Grants a lease and writes every key under it in one transaction. */
  private async register(): Promise<void> {
    const sentAt = Date.now();
    const { lease } = await this.store.grantLease(this.ttlSeconds, this.key);
    const leaseStr = lease.toString();
    const writes = [[this.key, this.value] as const, ...this.extra.entries()];
    try {
      await this.store.call(
        this.key,
        (c) =>
          c.kv.txn({
            success: writes.map(([key, value]) => ({
              request_put: { key: Buffer.from(key), value, lease: leaseStr },
            })),
          }),
        'txn',
      );
    } catch (err) {
      void this.store.revokeLease(lease, this.key).catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      this.lease = lease; // close() revokes it
      return;
    }
    this.lease = lease;
    this.renewedAt = sentAt;
    this.keep(lease);
    this.events.emit({ type: 'registered', leaseId: lease, at: sentAt });
    this.resolveFirst?.();
    this.resolveFirst = undefined;
    this.rejectFirst = undefined;
  }

  /** Hands the lease to the store's lease worker, which renews it every renewal interval. */
  private keep(lease: bigint): void {
    // A renewal that etcd holds (no quorum yet) is given up well within one renewal interval,
    // counting every endpoint the store tries in turn, not after the 5 s call deadline each:
    // when etcd answers again the next attempt is at most a retry interval away, inside the
    // TTL etcd grants a lease when it elects a leader.
    const endpoints = Math.max(1, this.store.options.endpoints.length);
    const deadlineMs = Math.min(
      this.store.options.callTimeoutMs,
      Math.max(500, this.renewIntervalMs / endpoints),
    );
    this.stopKeeping?.();
    this.stopKeeping = this.store.leases.keep(
      lease,
      { intervalMs: this.renewIntervalMs, retryMs: this.retryIntervalMs, deadlineMs },
      (e) => this.onKept(lease, e),
    );
  }

  private onKept(lease: bigint, e: KeptEvent): void {
    if (this.lease !== lease || this.closed) return;
    switch (e.type) {
      case 'renewed': {
        const sinceLastMs = e.sentAt - (this.renewedAt ?? e.sentAt);
        const failedAttempts = this.failedAttempts;
        this.renewedAt = e.sentAt;
        this.failedAttempts = 0;
        this.events.emit({
          type: 'renewed',
          leaseId: lease,
          at: e.sentAt,
          sinceLastMs,
          failedAttempts,
        });
        return;
      }
      case 'lost':
        this.markLost(lease);
        return;
      case 'failed':
        this.failedAttempts += 1;
        this.events.emit({
          type: 'error',
          error: new StoreError(e.error.code, e.error.message, { key: this.key }),
          at: Date.now(),
          attemptMs: e.attemptMs,
        });
        return;
    }
  }

  private markLost(lease: bigint): void {
    if (this.lease !== lease) return;
    this.lease = undefined;
    this.stopKeeping?.();
    this.stopKeeping = undefined;
    this.events.emit({ type: 'lost', leaseId: lease, at: Date.now() });
    this.waker.wake();
  }
}

function toBuffer(value: string | Buffer): Buffer {
  return typeof value === 'string' ? Buffer.from(value) : value;
}

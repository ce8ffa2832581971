/**
 * LeaseKeeper: the main thread's handle on the lease worker (store/lease-worker.ts). Every
 * lease of a process is granted, renewed and revoked there, on a connection of its own and
 * from timers on the worker's own event loop, so neither bulk traffic to etcd nor a long task
 * on the main thread can make a lease expire: a busy process slows down, its leases hold.
 *
 * One keeper per {@link Store}, started on the first lease call. While it has work (a call
 * waiting, a lease kept) it keeps the process alive; idle, it does not.
 */
import { Worker } from 'node:worker_threads';
import { StoreError } from './errors.js';
import { Listeners, type Unsubscribe } from './listeners.js';
import type {
  KeepSpec,
  LeaseReply,
  LeaseRequest,
  LeaseWorkerData,
  WireError,
} from './lease-protocol.js';

/** How a kept lease is renewed; see {@link LeaseKeeper.keep}. */
export interface KeepOptions {
  /** Pause between two renewals. */
  readonly intervalMs: number;
  /** Pause before trying again after a failed renewal. Default min(1000, intervalMs). */
  readonly retryMs?: number;
  /** A renewal not answered within this fails. Default intervalMs. */
  readonly deadlineMs?: number;
  /**
   * Which LeaseKeepAlive stream renews it. Default 0, the one every lease of the process
   * shares; a LeasePool spreads its many leases over several (store/lease-pool.ts).
   */
  readonly stream?: number;
}

/** What happens to one kept lease, as {@link LeaseKeeper.keep} reports it. */
export type KeptEvent =
  /** etcd confirmed the renewal SENT at `sentAt` (Unix ms); `ttl` seconds are left. */
  | { readonly type: 'renewed'; readonly sentAt: number; readonly ttl: number }
  /** The lease is gone (expired or revoked); it is no longer renewed. */
  | { readonly type: 'lost'; readonly at: number }
  /**
   * A renewal failed (etcd unreachable, no answer in time) after `attemptMs`; retried at once
   * on the next endpoint, or after retryMs once every endpoint failed in a row.
   */
  | { readonly type: 'failed'; readonly error: StoreError; readonly attemptMs: number };

/** One confirmed renewal, for metrics: how late its timer fired and its round trip. */
export interface LeaseRenewal {
  readonly lateMs: number;
  readonly rttMs: number;
}

/** A finished grant or revoke, for the store's request listeners. */
export interface LeaseCall {
  readonly op: 'lease-grant' | 'lease-revoke';
  readonly seconds: number;
  readonly error?: StoreError['code'];
}

interface Kept {
  readonly spec: KeepSpec;
  readonly fn: (event: KeptEvent) => void;
}

interface Waiting {
  readonly resolve: (reply: Extract<LeaseReply, { op: 'reply' }>) => void;
  readonly reject: (err: StoreError) => void;
}

export class LeaseKeeper {
  private worker: Worker | undefined;
  private nextReq = 1;
  private readonly waiting = new Map<number, Waiting>();
  private readonly kept = new Map<string, Kept>();
  private readonly renewals = new Listeners<LeaseRenewal>();
  private closed = false;

  constructor(
    private readonly options: LeaseWorkerData,
    private readonly report: (call: LeaseCall) => void,
  ) {}

  /** Grants a lease of `ttlSeconds`; its id and the TTL etcd granted. `key` names errors. */
  async grant(ttlSeconds: number, key?: string): Promise<{ lease: bigint; ttlSeconds: number }> {
    const r = await this.ask('lease-grant', key, (req) => ({ op: 'grant', req, ttlSeconds }));
    return { lease: BigInt(r.lease ?? '0'), ttlSeconds: r.ttlSeconds ?? 0 };
  }

  /** Revokes a lease (and stops renewing it): etcd deletes every key under it. */
  async revoke(lease: bigint, key?: string): Promise<void> {
    this.kept.delete(lease.toString());
    await this.ask('lease-revoke', key, (req) => ({ op: 'revoke', req, lease: lease.toString() }));
  }

  /**
   * Renews `lease` every `intervalMs` until the returned function is called or the lease is
   * lost; `fn` hears every outcome. Keeping a lease kept already replaces its options and
   * its listener.
   */
  keep(lease: bigint, opts: KeepOptions, fn: (event: KeptEvent) => void): () => void {
    if (this.closed) throw new StoreError('closed', 'store is closed');
    const id = lease.toString();
    const spec: KeepSpec = {
      lease: id,
      intervalMs: opts.intervalMs,
      retryMs: opts.retryMs ?? Math.min(1000, opts.intervalMs),
      deadlineMs: opts.deadlineMs ?? opts.intervalMs,
      stream: opts.stream ?? 0,
    };
    const k: Kept = { spec, fn };
    this.kept.set(id, k);
    this.send({ op: 'keep', spec });
    return () => {
      if (this.kept.get(id) !== k) return;
      this.kept.delete(id);
      if (!this.closed) this.send({ op: 'drop', lease: id });
    };
  }

  /** How many leases are being renewed. */
  get size(): number {
    return this.kept.size;
  }

  /** Calls `fn` after every confirmed renewal (cheap work only). */
  onRenewal(fn: (renewal: LeaseRenewal) => void): Unsubscribe {
    return this.renewals.on(fn);
  }

  /** Stops the worker; waiting calls fail with `closed`, kept leases expire at their TTL. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.kept.clear();
    this.renewals.clear();
    const worker = this.worker;
    this.worker = undefined;
    this.failWaiting(new StoreError('closed', 'store is closed'));
    void worker?.terminate();
  }

  private ask(
    op: LeaseCall['op'],
    key: string | undefined,
    make: (req: number) => LeaseRequest,
  ): Promise<Extract<LeaseReply, { op: 'reply' }>> {
    if (this.closed) {
      return Promise.reject(
        new StoreError('closed', 'store is closed', key === undefined ? {} : { key }),
      );
    }
    const req = this.nextReq++;
    return new Promise((resolve, reject) => {
      this.waiting.set(req, {
        resolve: (reply) => {
          if (reply.ok) {
            this.report({ op, seconds: reply.seconds });
            resolve(reply);
            return;
          }
          const error = fromWire(reply.error, key);
          this.report({ op, seconds: reply.seconds, error: error.code });
          reject(error);
        },
        reject,
      });
      this.send(make(req));
    });
  }

  private send(msg: LeaseRequest): void {
    const worker = (this.worker ??= this.spawn());
    worker.postMessage(msg);
    this.refresh();
  }

  /** Keeps the process alive exactly while the keeper has work. */
  private refresh(): void {
    if (this.waiting.size > 0 || this.kept.size > 0) this.worker?.ref();
    else this.worker?.unref();
  }

  private spawn(): Worker {
    const worker = new Worker(new URL('./lease-worker.js', import.meta.url), {
      workerData: this.options,
      // The worker holds a few leases and one connection: a small heap is plenty.
      resourceLimits: { maxOldGenerationSizeMb: 64 },
    });
    worker.on('message', (msg: LeaseReply) => this.onMessage(msg));
    worker.on('error', (err) => this.onExit(worker, `lease worker failed: ${err.message}`));
    worker.on('exit', (code) => this.onExit(worker, `lease worker exited (code ${code})`));
    return worker;
  }

  private onMessage(msg: LeaseReply): void {
    if (msg.op === 'reply') {
      const w = this.waiting.get(msg.req);
      this.waiting.delete(msg.req);
      w?.resolve(msg);
      this.refresh();
      return;
    }
    for (const o of msg.items) {
      const fn = this.kept.get(o.lease)?.fn;
      if (o.type === 'renewed') {
        this.renewals.emit({ lateMs: o.lateMs, rttMs: o.rttMs });
        fn?.({ type: 'renewed', sentAt: o.sentAt, ttl: o.ttl });
      } else if (o.type === 'lost') {
        this.kept.delete(o.lease);
        fn?.({ type: 'lost', at: o.at });
      } else {
        fn?.({ type: 'failed', error: fromWire(o.error, undefined), attemptMs: o.attemptMs });
      }
    }
    this.refresh();
  }

  /**
   * The worker died (a bug, or its heap limit): every waiting call fails, every kept lease
   * hears a failure and is handed to a fresh worker at once, which renews it from there.
   */
  private onExit(worker: Worker, why: string): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    const error = new StoreError('unavailable', `${why}; restarted it`);
    this.failWaiting(error);
    if (this.closed) return;
    const kept = [...this.kept.values()];
    for (const k of kept) this.send({ op: 'keep', spec: k.spec });
    for (const k of kept) k.fn({ type: 'failed', error, attemptMs: 0 });
    this.refresh();
  }

  private failWaiting(error: StoreError): void {
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of waiting) w.reject(error);
  }
}

function fromWire(error: WireError | undefined, key: string | undefined): StoreError {
  const where = key === undefined ? {} : { key };
  return error === undefined
    ? new StoreError('internal', 'lease worker gave no reason', where)
    : new StoreError(error.code, error.message, where);
}

/**
 * The messages between a {@link LeaseKeeper} (the process's main thread) and its lease worker
 * (store/lease-worker.ts): lease ids travel as decimal strings, times as Unix ms.
 */
import type { StoreErrorCode } from './errors.js';
import type { StoreTls } from './tls.js';

/** What the worker is started with: how to reach etcd (the store's resolved options). */
export interface LeaseWorkerData {
  readonly endpoints: readonly string[];
  readonly tls: StoreTls | undefined;
  readonly auth: { readonly username: string; readonly password: string } | undefined;
  readonly dialTimeoutMs: number;
  readonly callTimeoutMs: number;
}

/** How one kept lease is renewed. */
export interface KeepSpec {
  readonly lease: string;
  /** Pause between two renewals. */
  readonly intervalMs: number;
  /** Pause before trying again after a failed renewal. */
  readonly retryMs: number;
  /** A renewal not answered within this is a failure (and the stream is opened afresh). */
  readonly deadlineMs: number;
  /** Which of the worker's LeaseKeepAlive streams renews it (0: the process's own). */
  readonly stream: number;
}

/** Main thread -> worker. */
export type LeaseRequest =
  | { readonly op: 'grant'; readonly req: number; readonly ttlSeconds: number }
  | { readonly op: 'revoke'; readonly req: number; readonly lease: string }
  | { readonly op: 'keep'; readonly spec: KeepSpec }
  | { readonly op: 'drop'; readonly lease: string }
  | { readonly op: 'close'; readonly req: number };

/** A failure as it crosses the thread boundary. */
export interface WireError {
  readonly code: StoreErrorCode;
  readonly message: string;
}

/** What happened to one kept lease. */
export type LeaseOutcome =
  /** etcd confirmed the renewal sent at `sentAt`; `ttl` is what it reports left. */
  | {
      readonly type: 'renewed';
      readonly lease: string;
      readonly sentAt: number;
      readonly ttl: number;
      /** How late the renewal's timer fired, ms: the worker's own event-loop delay. */
      readonly lateMs: number;
      /** Round trip of the renewal, ms. */
      readonly rttMs: number;
    }
  /** etcd answered TTL <= 0: the lease is gone; the worker no longer renews it. */
  | { readonly type: 'lost'; readonly lease: string; readonly at: number }
  /** The renewal failed or was not answered in time; the worker retries after retryMs. */
  | {
      readonly type: 'failed';
      readonly lease: string;
      readonly error: WireError;
      /** How long the failed attempt took, from sending (or trying to) to giving up. */
      readonly attemptMs: number;
    };

/** Worker -> main thread. */
export type LeaseReply =
  | {
      readonly op: 'reply';
      readonly req: number;
      readonly ok: boolean;
      readonly lease?: string;
      readonly ttlSeconds?: number;
      readonly error?: WireError;
      readonly seconds: number;
    }
  /** Outcomes are batched: one message per turn of the worker's loop. */
  | { readonly op: 'outcomes'; readonly items: readonly LeaseOutcome[] };

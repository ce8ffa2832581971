/**
 * AimdWindow: how many requests a writer keeps in flight to etcd, paced by etcd's observed
 * latency the way TCP paces a connection (additive increase, multiplicative decrease). While
 * etcd answers within the target the window grows by about one request per window's worth
 * of answers; an answer slower than the target, or a timeout, halves it (at most once per
 * round trip, so one slow burst is not punished once per request of it). A slow etcd thus
 * sees fewer requests at once instead of a growing queue that delays everyone else's,
 * leases and heartbeats included, and the writer speeds up again as etcd recovers.
 *
 * The target is relative: `targetFactor` times the fastest answer seen lately (at least
 * `minTargetMs`), so the same rule holds on a fast host and a slow one; but never above
 * `maxTargetMs`: etcd 3.4+ refuses lease renewals ("waiting for the applied index took too
 * long") once applying writes lags about a second behind committing them, so writers must
 * back off well before their transactions take that long (issue 25: every machine lease of
 * a 100,000 scale was lost that way on an overloaded host).
 */
import { isStoreError } from './errors.js';

/** Options of an {@link AimdWindow}; defaults in brackets. */
export interface AimdOptions {
  /** Window to start with [8]. */
  readonly initial?: number;
  /** Smallest window [1]: the writer always makes progress. */
  readonly min?: number;
  /** Largest window [32]. */
  readonly max?: number;
  /** An answer slower than this many times the fastest seen lately is "slow" [4]. */
  readonly targetFactor?: number;
  /** The target is never below this, ms [100]. */
  readonly minTargetMs?: number;
  /** Nor above this, ms [500]. */
  readonly maxTargetMs?: number;
}

/** A snapshot of a window, for metrics and tests. */
export interface AimdState {
  readonly limit: number;
  readonly inFlight: number;
  readonly waiting: number;
  readonly targetMs: number;
  readonly decreases: number;
}

/** The fastest answer is forgotten this fast (per answer), so a target can rise again. */
const FLOOR_DECAY = 1.01;

export class AimdWindow {
  private limit: number;
  private readonly min: number;
  private readonly max: number;
  private readonly factor: number;
  private readonly minTargetMs: number;
  private readonly maxTargetMs: number;
  private floorMs = Infinity;
  private inFlight = 0;
  private readonly queue: (() => void)[] = [];
  /** When the window last shrank: answers to requests sent before it do not shrink it again. */
  private shrunkAt = -Infinity;
  private decreases = 0;

  constructor(opts: AimdOptions = {}) {
    this.min = Math.max(1, opts.min ?? 1);
    this.max = Math.max(this.min, opts.max ?? 32);
    this.limit = Math.min(this.max, Math.max(this.min, opts.initial ?? 8));
    this.factor = opts.targetFactor ?? 4;
    this.minTargetMs = opts.minTargetMs ?? 100;
    this.maxTargetMs = Math.max(this.minTargetMs, opts.maxTargetMs ?? 500);
  }

  /** Runs `fn` once the window has room, and learns from how long etcd took to answer it. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.queue.length > 0 || this.inFlight >= Math.floor(this.limit)) {
      // Counted in flight by admit() when it lets this one go, so nobody overtakes it.
      await new Promise<void>((resolve) => this.queue.push(resolve));
    } else {
      this.inFlight += 1;
    }
    const sentAt = performance.now();
    try {
      const result = await fn();
      this.learn(sentAt, performance.now() - sentAt, false);
      return result;
    } catch (err) {
      const overloaded = isStoreError(err, 'deadline') || isStoreError(err, 'unavailable');
      this.learn(sentAt, performance.now() - sentAt, overloaded);
      throw err;
    } finally {
      this.inFlight -= 1;
      this.admit();
    }
  }

  /** The largest the window may grow: how many requests a writer prepares at once. */
  get ceiling(): number {
    return this.max;
  }

  get state(): AimdState {
    return {
      limit: Math.floor(this.limit),
      inFlight: this.inFlight,
      waiting: this.queue.length,
      targetMs: this.targetMs(),
      decreases: this.decreases,
    };
  }

  private targetMs(): number {
    return Math.min(this.maxTargetMs, Math.max(this.minTargetMs, this.floorMs * this.factor));
  }

  private learn(sentAt: number, ms: number, overloaded: boolean): void {
    if (!overloaded) this.floorMs = Math.min(this.floorMs * FLOOR_DECAY, ms);
    if (overloaded || ms > this.targetMs()) {
      if (sentAt < this.shrunkAt) return; // sent into the burst that shrank it already
      this.limit = Math.max(this.min, this.limit / 2);
      this.shrunkAt = performance.now();
      this.decreases += 1;
      return;
    }
    this.limit = Math.min(this.max, this.limit + 1 / this.limit);
  }

  private admit(): void {
    while (this.queue.length > 0 && this.inFlight < Math.floor(this.limit)) {
      this.inFlight += 1;
      this.queue.shift()?.();
    }
  }
}

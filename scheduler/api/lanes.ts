/**
 * Admission lanes: recovery gets through while bulk work runs (docs/architecture.md,
 * "Recovery always works"). Two kinds of write are told apart:
 *
 * - bulk: a scale up, which may write hundreds of thousands of records. Scale-ups run one
 *   at a time per replica, the rest wait in a bounded queue (refused with RESOURCE_EXHAUSTED
 *   beyond it); before each of its transactions a scale-up lets every recovery write in
 *   flight finish first ({@link AdmissionLanes.bulkTurn});
 * - recovery: a scale down, a stop or unload, a destroy. They never queue behind bulk work,
 *   and a scale of a template (any scale, later wins) cancels the scale-ups of that template
 *   that are queued or running, so `scale web=2` undoes `scale web=1000000` at once.
 *
 * Everything else (submit, start, update, ...) writes at most 128 units a request and takes
 * no lane. One instance per API server; no timers, nothing to close.
 *
 * A scale-up's transactions go out through {@link AdmissionLanes.bulkWindow}: as many at once
 * as etcd answers promptly (store/aimd.ts), fewer when it slows, so a big scale never piles
 * up requests in front of everyone else's (leases have their own connection anyway).
 */
import { AimdWindow } from '../../store/index.js';
import { ApiError } from '../gate/errors.js';

/** Scale-ups waiting for their turn on one replica, beyond the one running. */
export const MAX_QUEUED_SCALE_UPS = 16;

/** The retry hint of a refused scale-up: this much per scale-up ahead of it, at most a minute. */
export const RETRY_PER_SCALE_UP_MS = 5_000;

/** A scale-up's place in the bulk lane. */
export interface BulkTicket {
  /** Fires when a later scale of the same template supersedes this one. */
  readonly signal: AbortSignal;
  /** The count of the scale that superseded it, once one did. */
  supersededBy(): number | undefined;
  /** Leaves the lane (running or queued); the next scale-up starts. Idempotent. */
  done(): void;
}

interface Entry {
  readonly template: string;
  readonly abort: AbortController;
  by: number | undefined;
  start: () => void;
  finished: boolean;
}

export class AdmissionLanes {
  /** How many bulk transactions go to etcd at once, paced by its latency. */
  readonly bulkWindow = new AimdWindow({ initial: 8, max: 16 });
  private readonly queue: Entry[] = [];
  private running: Entry | undefined;
  private recovering = 0;
  private recovered: (() => void)[] = [];

  /** Recovery writes in flight now. */
  get recoveryInFlight(): number {
    return this.recovering;
  }

  /** Scale-ups running or queued now. */
  get bulkInFlight(): number {
    return this.queue.length + (this.running === undefined ? 0 : 1);
  }

  /** Runs a recovery write: bulk work pauses between its transactions until it is done. */
  async recovery<T>(fn: () => Promise<T>): Promise<T> {
    this.recovering += 1;
    try {
      return await fn();
    } finally {
      this.recovering -= 1;
      if (this.recovering === 0) for (const wake of this.recovered.splice(0)) wake();
    }
  }

  /** Resolves when no recovery write is in flight: bulk work calls it before each transaction. */
  bulkTurn(): Promise<void> {
    if (this.recovering === 0) return Promise.resolve();
    return new Promise((resolve) => this.recovered.push(resolve));
  }

  /**
   * A scale of `template` to `count` arrived: every scale-up of that template queued or
   * running is superseded (its signal fires; the scale's own lock record stops whatever
   * transaction it already sent).
   */
  supersede(template: string, count: number): void {
    for (const e of [this.running, ...this.queue]) {
      if (e === undefined || e.template !== template || e.abort.signal.aborted) continue;
      e.by = count;
      e.abort.abort();
    }
    // A superseded scale-up that has not started leaves the queue at once.
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const e = this.queue[i] as Entry;
      if (!e.abort.signal.aborted) continue;
      this.queue.splice(i, 1);
      e.start();
    }
  }

  /**
   * Waits for a scale-up's turn in the bulk lane. RESOURCE_EXHAUSTED when
   * {@link MAX_QUEUED_SCALE_UPS} wait already. The ticket's signal fires if a later scale of
   * the template supersedes it, queued or running; call `done()` when finished.
   */
  async bulk(template: string): Promise<BulkTicket> {
    if (this.running !== undefined && this.queue.length >= MAX_QUEUED_SCALE_UPS) {
      const ahead = this.queue.length + 1;
      const retryMs = Math.min(60_000, ahead * RETRY_PER_SCALE_UP_MS);
      throw new ApiError(
        'resource-exhausted',
        `${ahead} scale-ups are running or queued on this scheduler; retry in about ${retryMs / 1000} s (flotctl watch shows them), or scale down, which does not wait`,
        undefined,
        retryMs,
      );
    }
    const entry: Entry = {
      template,
      abort: new AbortController(),
      by: undefined,
      start: () => undefined,
      finished: false,
    };
    if (this.running === undefined) this.running = entry;
    else {
      const started = new Promise<void>((resolve) => (entry.start = resolve));
      this.queue.push(entry);
      await started;
      if (!entry.abort.signal.aborted) this.running = entry;
    }
    return {
      signal: entry.abort.signal,
      supersededBy: () => entry.by,
      done: () => this.finish(entry),
    };
  }

  private finish(entry: Entry): void {
    if (entry.finished) return;
    entry.finished = true;
    if (this.running !== entry) return;
    this.running = this.queue.shift();
    this.running?.start();
  }
}

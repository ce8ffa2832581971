/**
 * How fast the leader may disturb running units, and when it must not at all.
 *
 * - {@link MoveBudget}: a token bucket. Every already-placed unit that a pass stops or moves
 *   (its machine was lost or drained, it stopped being feasible, a Replaces= unit took its
 *   machine) spends one token; new placements are free. The planner gets the whole balance as
 *   `maxMoves` and the rest of the work is deferred to a later pass.
 * - {@link LossGuard}: when more than half of the machines vanish within a short window, the
 *   fault is more likely the leader's own (a partition, an etcd hiccup) than the machines', so
 *   rescheduling pauses. It resumes when enough machines return, when the pause times out, or
 *   when an operator says so ({@link LossGuard.resume}). Machines cut off together do not
 *   lose their leases at one instant (etcd sweeps expired leases every 500 ms, and their last
 *   renewals differ), so after every loss moves wait a short settle time (500 ms: one more
 *   sweep) and losses that arrive together are judged together. Losses spread wider than
 *   that may move the first machine's units before the pause starts; the pause then stops
 *   the rest. A longer settle catches more, at the price of slower failover.
 *
 * Both take the clock as an input, so their decisions can be replayed in tests.
 */

/** A clock in milliseconds; `Date.now` in the daemon, a counter in tests. */
export type Clock = () => number;

/**
 * A token bucket of moves: `ratePerSecond` tokens a second, holding at most `burst`. A rate of
 * 0 means unlimited.
 */
export class MoveBudget {
  private tokens: number;
  private last: number;

  constructor(
    public ratePerSecond: number,
    public burst: number = Math.max(1, ratePerSecond),
    private readonly now: Clock = Date.now,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** Changes the rate (and the burst with it), keeping the balance earned so far. */
  setRate(ratePerSecond: number): void {
    if (ratePerSecond === this.ratePerSecond) return;
    this.refill();
    this.ratePerSecond = ratePerSecond;
    this.burst = Math.max(1, ratePerSecond);
    this.tokens = Math.min(this.tokens, this.burst);
  }

  /** True when the budget never runs out. */
  get unlimited(): boolean {
    return this.ratePerSecond <= 0;
  }

  /** Whole moves that may be spent now: what a pass passes to the planner as `maxMoves`. */
  available(): number {
    if (this.unlimited) return Number.POSITIVE_INFINITY;
    this.refill();
    return Math.floor(this.tokens);
  }

  /** Spends `moves` (the plan's `moves`); the balance never goes below zero. */
  spend(moves: number): void {
    if (this.unlimited || moves <= 0) return;
    this.refill();
    this.tokens = Math.max(0, this.tokens - moves);
  }

  /** Milliseconds until at least one whole move is available (0 when one is now). */
  msUntilNext(): number {
    if (this.unlimited) return 0;
    this.refill();
    if (this.tokens >= 1) return 0;
    return Math.ceil(((1 - this.tokens) * 1000) / this.ratePerSecond);
  }

  private refill(): void {
    const now = this.now();
    const elapsed = Math.max(0, now - this.last);
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.ratePerSecond) / 1000);
  }
}

/**
 * The move rate `--reschedule-rate auto` uses: 2% of the placed units per second, at least
 * 20. A loss of 1% of the machines then moves in about half a second at any size (a fixed
 * 20/s made it take a minute at 100,000 units), while a wider storm is still paced, and a
 * loss of half the machines pauses altogether (the {@link LossGuard}).
 */
export function autoRescheduleRate(placedUnits: number): number {
  return Math.max(20, Math.ceil(placedUnits * 0.02));
}

/** Options of a {@link LossGuard}; {@link LossGuard} documents the defaults. */
export interface LossGuardOptions {
  /** Losses this close together count as "at once". Default 30 000 ms. */
  windowMs?: number;
  /** A pause ends by itself after this long; 0 means only returns or an operator end it. Default 300 000 ms. */
  pauseTimeoutMs?: number;
  /** After a loss, moves wait this long for further losses. Default 500 ms. */
  settleMs?: number;
  now?: Clock;
}

/** Why rescheduling is paused, for logs, the API and `flotctl`. */
export interface PauseState {
  /** Unix ms when the pause began. */
  readonly since: number;
  /** The machines whose loss caused it and that are still gone, sorted. */
  readonly lost: readonly string[];
  /** Machines known when it was decided: the live ones plus the lost ones. */
  readonly total: number;
  /** Unix ms when it ends by itself, or undefined when it never does. */
  readonly resumesAt: number | undefined;
  /** One line for people. */
  readonly reason: string;
}

/** What {@link LossGuard.evaluate} decided changed, for logging. */
export type GuardTransition =
  | { readonly type: 'paused'; readonly pause: PauseState }
  | { readonly type: 'resumed'; readonly why: 'returned' | 'timeout' | 'operator' }
  | undefined;

/**
 * Tracks machine losses and decides whether rescheduling is paused. Feed it every machine
 * appearance and loss (on every replica, so a newly elected leader knows the recent history),
 * then call {@link evaluate} before each pass.
 *
 * The rule: with `lost` the machines lost within the window and `live` those present, the
 * guard pauses when `2 * lost > live + lost`, i.e. more than half of the machines vanished.
 * While paused it keeps the lost set; a machine that comes back leaves it, and when the rule
 * no longer holds the pause ends. It also ends after `pauseTimeoutMs`, or by
 * {@link resume}; then the machines that caused it are forgotten, so their units move.
 */
export class LossGuard {
  readonly windowMs: number;
  readonly pauseTimeoutMs: number;
  readonly settleMs: number;
  private readonly now: Clock;
  private lastLoss = Number.NEGATIVE_INFINITY;
  /** Machine id -> Unix ms when it was lost. */
  private readonly recent = new Map<string, number>();
  private pause: PauseState | undefined;

  constructor(opts: LossGuardOptions = {}) {
    this.windowMs = opts.windowMs ?? 30_000;
    this.pauseTimeoutMs = opts.pauseTimeoutMs ?? 300_000;
    this.settleMs = opts.settleMs ?? 500;
    this.now = opts.now ?? Date.now;
  }

  /** A machine's record disappeared (its lease expired, or it was deleted). */
  machineLost(id: string, at: number = this.now()): void {
    if (!this.recent.has(id)) this.recent.set(id, at);
    this.lastLoss = Math.max(this.lastLoss, at);
  }

  /**
   * A new leader found these machines absent while units are still placed on them: they
   * count as lost now, whatever the previous leader decided, so a mass loss that a leader
   * died during pauses its successor too (with a fresh timeout).
   */
  machinesAbsent(ids: Iterable<string>): void {
    const now = this.now();
    for (const id of ids) this.recent.set(id, now);
  }

  /** Milliseconds until the last loss has settled (0 when moves may go ahead). */
  settleRemaining(): number {
    return Math.max(0, this.lastLoss + this.settleMs - this.now());
  }

  /** A machine's record (re)appeared: it is not lost. */
  machineSeen(id: string): void {
    this.recent.delete(id);
  }

  /** The current pause, if rescheduling is paused. */
  get paused(): PauseState | undefined {
    return this.pause;
  }

  /** Ends a pause now (operator action) and forgets the losses that caused it. */
  resume(): GuardTransition {
    if (this.pause === undefined) return undefined;
    this.end();
    return { type: 'resumed', why: 'operator' };
  }

  /**
   * Re-decides with `live` machines present now. Returns what changed, if anything; the
   * state is then in {@link paused}.
   */
  evaluate(live: number): GuardTransition {
    const now = this.now();
    if (this.pause !== undefined) {
      const lost = [...this.recent.keys()].filter((id) => this.pause?.lost.includes(id));
      if (2 * lost.length <= live + lost.length) {
        this.pause = undefined;
        this.prune(now);
        return { type: 'resumed', why: 'returned' };
      }
      if (this.pause.resumesAt !== undefined && now >= this.pause.resumesAt) {
        this.end();
        return { type: 'resumed', why: 'timeout' };
      }
      if (lost.length !== this.pause.lost.length) this.pause = { ...this.pause, lost };
      return undefined;
    }
    this.prune(now);
    const lost = this.recent.size;
    if (lost === 0 || 2 * lost <= live + lost) return undefined;
    const ids = [...this.recent.keys()].sort();
    const total = live + lost;
    this.pause = {
      since: now,
      lost: ids,
      total,
      resumesAt: this.pauseTimeoutMs > 0 ? now + this.pauseTimeoutMs : undefined,
      reason:
        `${lost} of ${total} machines vanished within ${Math.round(this.windowMs / 1000)} s: ` +
        'more likely a partition or an etcd fault than dead machines, so their units stay put',
    };
    return { type: 'paused', pause: this.pause };
  }

  private end(): void {
    for (const id of this.pause?.lost ?? []) this.recent.delete(id);
    this.pause = undefined;
  }

  private prune(now: number): void {
    for (const [id, at] of this.recent) {
      if (now - at > this.windowMs) this.recent.delete(id);
    }
  }
}

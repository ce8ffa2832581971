/**
 * The leader's level-triggered loop. While this replica leads, every change of units,
 * machines, machine metadata or placements (coalesced over a few ms) and a periodic tick
 * start a pass: snapshot from the cluster cache, the pure planner, fenced commit. A pass that
 * wrote waits until the cache shows its writes, so the next pass never plans from a view
 * older than its own decisions. When all that changed is units destroyed, a sweep deletes
 * their placements instead of planning the whole cluster, and the tick plans after it.
 *
 * Disturbing running units is paced: moves (lost or drained machine, infeasible placement,
 * Replaces=) spend a {@link MoveBudget}, and when more than half of the machines vanish at
 * once the {@link MassLossPause} (pause.ts) stops them altogether (new placements and
 * removals of inactive units go on). The term's AbortSignal is checked before every
 * transaction; a refused fence ends the term at once.
 */
import type { Logger } from 'pino';
import { AimdWindow, isStoreError, Waker, type Store } from '../../store/index.js';
import type { ClusterCache } from '../view/cluster-cache.js';
import { commitWork, decideSweep, decideWorkSteps, type CommitResult } from './commit.js';
import { isSchedulerError, SchedulerError } from '../errors.js';
import type { Leadership, Term } from './leadership.js';
import { LostMachines } from './lost-machines.js';
import { MassLossPause } from './pause.js';
import { planSteps, type Plan } from '../planner/index.js';
import { RolloutDriver } from '../rollouts/driver.js';
import { autoRescheduleRate, MoveBudget, type Clock, type PauseState } from './reschedule.js';
import { DEFAULT_SLICE_MS, runSliced } from '../../lib/sliced.js';

/** Options of an {@link Engine}; the defaults are the daemon's. */
export interface EngineOptions {
  /** How long to gather more changes before planning. Default 20 ms. */
  debounceMs?: number;
  /** Plan at least this often, changes or not. Default 1000 ms. */
  tickMs?: number;
  /**
   * Moves of already-placed units per second; 0 means unlimited; `auto` (the default) sizes
   * it to the cluster on every pass ({@link autoRescheduleRate}).
   */
  rescheduleRate?: number | 'auto';
  /** Machine losses within this window count as "at once". Default 30 000 ms. */
  lossWindowMs?: number;
  /** A rescheduling pause ends by itself after this long; 0 means never. Default 300 000 ms. */
  pauseTimeoutMs?: number;
  /** After a machine loss, moves wait this long for further losses. Default 500 ms. */
  lossSettleMs?: number;
  /** Remind the log of a pause this often. Default 60 000 ms. */
  pauseReminderMs?: number;
  now?: Clock;
  /**
   * A pass plans and decides its writes in slices of this many ms on the thread the API
   * shares, the event loop running between them (lib/sliced.ts). Default 20.
   */
  sliceMs?: number;
  /** Hears every pass that planned (metrics). */
  onPass?: (report: PassReport) => void;
}

/** One pass that planned, or swept: how long planning took and what it committed. */
export interface PassReport {
  /**
   * Viewing the cache, planning and deciding the writes, seconds of the thread's time (the
   * slices added up, not the waits between them; not the commit); undefined for a sweep.
   */
  readonly planSeconds: number | undefined;
  /** New placements written, counted only when every write of the pass applied. */
  readonly placed: number;
  /** Placements deleted, likewise. */
  readonly removed: number;
  /** Writes whose condition failed (a stale view); the next pass re-decides them. */
  readonly failed: number;
}

/** What the engine is doing, for the API and for tests. */
export interface EngineStatus {
  readonly leader: boolean;
  /** The term's fence revision (the placements' epoch) while leading. */
  readonly epoch: bigint | undefined;
  /** Passes that planned. */
  readonly passes: number;
  /** Passes that only unplaced destroyed units, without planning. */
  readonly sweeps: number;
  /** Set while rescheduling of lost machines' units is paused (leader only). */
  readonly paused: PauseState | undefined;
  /** Moves the last pass had to leave for later (budget spent or paused). */
  readonly deferred: number;
  /** Units the last pass could not place. */
  readonly unscheduled: number;
}

/** Removals a pass logs one by one; beyond, one line counts the rest. */
const UNPLACE_LINES = 1_000;

/** Runs passes while its {@link Leadership} says this replica leads. */
export class Engine {
  private readonly debounceMs: number;
  private readonly tickMs: number;
  private readonly sliceMs: number;
  private readonly now: Clock;
  private readonly budget: MoveBudget;
  private readonly autoRate: boolean;
  private readonly pause: MassLossPause;
  private readonly waker = new Waker();
  /**
   * The leader's commits go out as fast as etcd answers them, no faster (store/aimd.ts): a
   * slow etcd gets fewer transactions at once, and the leases and the API's writes that
   * share it are not queued behind a pass's thousands of placements.
   */
  readonly writes = new AimdWindow({ initial: 8, max: 32 });
  private readonly unsubscribe: (() => void)[] = [];
  private term: Term | undefined;
  private loop: Promise<void> = Promise.resolve();
  private dirty = true;
  /** The last pass left work (deferred moves, failed conditions): the tick plans again. */
  private replan = true;
  /** The next pass must plan (a new term, or the last plan left work): no sweep. */
  private owed = true;
  private closed = false;
  private passes = 0;
  private sweeps = 0;
  private last: Plan | undefined;
  /** How long the last pass held the thread to view, plan and decide, ms. */
  private lastPlanMs = 0;
  private readonly onPass: ((report: PassReport) => void) | undefined;
  private readonly rollouts: RolloutDriver;
  private readonly lost: LostMachines;

  constructor(
    private readonly store: Store,
    private readonly cache: ClusterCache,
    private readonly leadership: Leadership,
    opts: EngineOptions,
    private readonly logger: Logger,
  ) {
    this.debounceMs = opts.debounceMs ?? 20;
    this.tickMs = opts.tickMs ?? 1_000;
    this.sliceMs = opts.sliceMs ?? DEFAULT_SLICE_MS;
    this.now = opts.now ?? Date.now;
    this.onPass = opts.onPass;
    const rate = opts.rescheduleRate ?? 'auto';
    this.autoRate = rate === 'auto';
    this.budget = new MoveBudget(
      rate === 'auto' ? autoRescheduleRate(0) : rate,
      undefined,
      this.now,
    );
    this.pause = new MassLossPause(
      store,
      cache,
      leadership,
      {
        lossWindowMs: opts.lossWindowMs,
        pauseTimeoutMs: opts.pauseTimeoutMs,
        lossSettleMs: opts.lossSettleMs,
        pauseReminderMs: opts.pauseReminderMs,
        now: this.now,
        onResume: () => this.poke(),
      },
      logger,
    );
    this.rollouts = new RolloutDriver(
      store,
      cache.mirror,
      logger.child({ component: 'rollout' }),
      this.now,
    );
    this.lost = new LostMachines(
      store,
      cache.mirror,
      { now: this.now },
      logger.child({ component: 'lost-machines' }),
    );
  }

  /** Follows the cache and the election. Call once, before `leadership.start()`. */
  start(): void {
    this.unsubscribe.push(
      this.cache.onChange(() => this.poke()),
      this.pause.follow(),
      this.lost.follow(),
      this.leadership.on((e) => {
        if (e.type === 'elected') this.lead(e.term);
        else this.waker.wake();
      }),
    );
    const term = this.leadership.term;
    if (term !== undefined) this.lead(term);
  }

  status(): EngineStatus {
    const leading = this.term !== undefined && !this.term.signal.aborted;
    return {
      leader: leading,
      epoch: leading ? this.term?.fence.revision : undefined,
      passes: this.passes,
      sweeps: this.sweeps,
      paused: leading ? this.pause.paused : undefined,
      deferred: this.last?.deferred.length ?? 0,
      unscheduled: this.last?.unscheduled.size ?? 0,
    };
  }

  /** Operator action: ends a rescheduling pause now. Returns whether one was ended. */
  resumeRescheduling(): boolean {
    return this.pause.resume(this.term);
  }

  /** Stops after the current transaction (if any). Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    for (const u of this.unsubscribe.splice(0)) u();
    this.waker.wake();
    await this.loop;
  }

  private poke(): void {
    this.dirty = true;
    this.waker.wake();
  }

  private lead(term: Term): void {
    term.signal.addEventListener('abort', () => this.waker.wake(), { once: true });
    this.loop = this.loop
      .then(() => this.runTerm(term))
      .catch((err: unknown) => {
        // A bug, not an etcd fault (those are retried inside): give the term up, keep serving.
        this.logger.error({ err }, 'planning loop failed; resigning this term');
        this.leadership.deposed(term, 'the planning loop failed');
      });
  }

  private async runTerm(term: Term): Promise<void> {
    if (this.closed || term.signal.aborted) return;
    this.term = term;
    const log = this.logger.child({ epoch: term.fence.revision.toString() });
    if (!(await this.prepare(term, log))) return;
    this.dirty = true;
    this.replan = true;
    this.owed = true;
    let dueAt = 0;
    while (!this.closed && !term.signal.aborted) {
      if (!this.dirty && this.now() < dueAt) {
        await this.waker.sleep(dueAt - this.now());
        continue;
      }
      // A pass holds the event loop it shares with the replica's API for as long as it
      // plans (in slices): the next one waits at least as long, so under back-to-back passes
      // the API still has half of the thread (a stop or scale down is answered while
      // 100,000 pending instances are planned).
      if (this.dirty) await delay(Math.max(this.debounceMs, this.lastPlanMs));
      if (this.closed || term.signal.aborted) break;
      const changed = this.dirty || this.replan;
      this.dirty = false;
      dueAt = this.now() + this.tickMs;
      try {
        // Rolling updates rewrite unit records; the pass below places what they changed.
        await this.rollouts.pass(term);
        await this.lost.step(term);
        const { deferred, wait, retry, swept } = await this.pass(term, log, changed);
        // After a sweep the tick plans, for what the freed room lets the planner do.
        this.replan = swept || retry || deferred > 0;
        if (!swept) this.owed = retry || deferred > 0;
        if (retry) dueAt = Math.min(dueAt, this.now() + 100);
        else if (deferred > 0) dueAt = Math.min(dueAt, this.now() + Math.max(20, wait));
      } catch (err) {
        if (isStoreError(err, 'fenced')) {
          this.leadership.deposed(term, 'a fenced write was refused: another replica leads');
          break;
        }
        if (isSchedulerError(err, 'deposed') || isSchedulerError(err, 'closed')) break;
        if (term.signal.aborted) break;
        this.replan = true;
        log.warn({ err }, 'pass failed; retrying');
      }
    }
    log.info('planning stopped');
  }

  /** Before the first pass of a term: caches listed and holding the predecessor's writes. */
  private async prepare(term: Term, log: Logger): Promise<boolean> {
    while (!this.closed && !term.signal.aborted) {
      try {
        await this.cache.ready();
        await this.cache.catchUp();
        this.pause.termBegins(term);
        this.lost.termBegins();
        log.info('leading: planning');
        return true;
      } catch (err) {
        log.warn({ err }, 'cannot catch up with etcd; retrying');
        await this.waker.sleep(1_000);
      }
    }
    return false;
  }

  /**
   * One pass: plan from the cache, commit, wait until the cache shows the writes. A tick with
   * nothing changed since the last pass, nothing left over and no pause ending plans nothing:
   * the planner is deterministic, so it would decide what it decided before.
   */
  private async pass(
    term: Term,
    log: Logger,
    changed: boolean,
  ): Promise<{ deferred: number; wait: number; retry: boolean; swept?: boolean }> {
    const transition = await this.pause.beforePass(term, log);
    const pause = this.pause.paused;
    if (this.autoRate) this.budget.setRate(autoRescheduleRate(this.cache.placedUnits()));
    const settling = this.pause.settleRemaining();
    // When deferred work may go ahead again: never by itself while paused (the tick re-checks).
    const wait =
      pause !== undefined ? this.tickMs : settling > 0 ? settling : this.budget.msUntilNext();
    if (!changed && transition === undefined) return { deferred: 0, wait, retry: false };
    // When all that changed is units destroyed, unplace them without planning: work in
    // proportion to the change, where a plan costs the whole cluster.
    const vanished = transition === undefined && !this.owed ? this.cache.takeVanished() : undefined;
    if (vanished !== undefined) return this.sweep(term, log, vanished, wait);
    this.passes += 1;
    const started = performance.now();
    const slicing = { budgetMs: this.sliceMs, stop: () => this.stopReason(term) };
    // The view's snapshot is the pass's own (fresh arrays and maps; units and machines are
    // immutable records): the mirror may change between slices without changing it. Its
    // placement entries are the mirror's, live: decideWorkSteps drops what is newer than it.
    const viewed = await runSliced(this.cache.viewSteps(), slicing);
    const view = viewed.value;
    const viewMs = viewed.busyMs;
    const maxMoves = pause === undefined && settling === 0 ? this.budget.available() : 0;
    const planned = await runSliced(planSteps(view.snapshot, { maxMoves }), slicing);
    const result = planned.value;
    this.last = result;
    const decided = await runSliced(
      decideWorkSteps(this.store.keys, view, result, term.fence.revision, view.revision),
      slicing,
    );
    const work = decided.value;
    const busyMs = viewMs + planned.busyMs + decided.busyMs;
    const planSeconds = busyMs / 1000;
    this.lastPlanMs = busyMs;
    const committing = performance.now();
    if (work.first.length + work.second.length === 0) {
      this.onPass?.({ planSeconds, placed: 0, removed: 0, failed: 0 });
      return { deferred: result.deferred.length, wait, retry: (work.stale ?? 0) > 0 };
    }
    this.budget.spend(result.moves);
    // A line per removal, up to a bound: a scale down of 90,000 would otherwise hold the
    // thread for the whole log in one go.
    for (const d of result.unplace.slice(0, UNPLACE_LINES))
      log.info({ unit: d.unit, machine: d.machine, why: d.why, detail: d.detail }, 'unplacing');
    if (result.unplace.length > UNPLACE_LINES)
      log.info(
        { more: result.unplace.length - UNPLACE_LINES },
        'unplacing more, not logged one by one',
      );
    if (log.isLevelEnabled('debug'))
      for (const d of result.place) log.debug({ unit: d.unit, machine: d.machine }, 'placing');
    const res = await commitWork(this.store, term, work, {
      window: this.writes,
      keepUp: this.keepUp(),
    });
    const stale = work.stale ?? 0;
    const whole = res.failed === 0 && !res.skippedSecond;
    this.onPass?.({
      planSeconds,
      placed: whole ? work.counts.placed : 0,
      removed: whole ? work.counts.removed : 0,
      failed: res.failed,
    });
    log.info(
      {
        ...work.counts,
        units: view.snapshot.units.length,
        viewMs: Math.round(viewMs),
        planMs: Math.round(planned.busyMs),
        decideMs: Math.round(decided.busyMs),
        slices: viewed.slices + planned.slices + decided.slices,
        longestSliceMs: Math.round(
          Math.max(viewed.longestMs, planned.longestMs, decided.longestMs),
        ),
        wallMs: Math.round(committing - started),
        commitMs: Math.round(performance.now() - committing),
        stale,
        deferred: result.deferred.length,
        applied: res.applied,
        failed: res.failed,
        transactions: res.transactions,
      },
      'pass committed',
    );
    await this.seeOwnWrites(res);
    return { deferred: result.deferred.length, wait, retry: res.failed > 0 || stale > 0 };
  }

  /** Why a pass in progress must stop at its next slice, if it must: no writes after this. */
  private stopReason(term: Term): SchedulerError | undefined {
    if (term.signal.aborted)
      return new SchedulerError('deposed', `term ${term.fence.revision} ended; pass abandoned`);
    if (this.closed) return new SchedulerError('closed', 'the engine closed; pass abandoned');
    return undefined;
  }

  /**
   * A sweep: deletes the placements and pending reasons of destroyed units, fenced like any
   * pass's writes, then waits until the cache shows them.
   */
  private async sweep(
    term: Term,
    log: Logger,
    vanished: readonly string[],
    wait: number,
  ): Promise<{ deferred: number; wait: number; retry: boolean; swept: boolean }> {
    this.sweeps += 1;
    const work = decideSweep(this.cache.mirror, vanished);
    const res = await commitWork(this.store, term, work, {
      window: this.writes,
      keepUp: this.keepUp(),
    });
    this.onPass?.({
      planSeconds: undefined,
      placed: 0,
      removed: res.failed === 0 ? work.counts.removed : 0,
      failed: res.failed,
    });
    log.info(
      {
        units: vanished.length,
        removed: work.counts.removed,
        applied: res.applied,
        failed: res.failed,
        transactions: res.transactions,
      },
      'sweep committed',
    );
    await this.seeOwnWrites(res);
    return { deferred: 0, wait, retry: res.failed > 0, swept: true };
  }

  /**
   * What keeps one commit's writes at most {@link KEEP_UP_REVISIONS} revisions ahead of this
   * replica's mirror: a writer faster than its readers ingest (etcd takes a 100,000-instance
   * commit faster than a 2-core host decodes it) left the mirror 10 s behind, and every API
   * read waits for the mirror (reads.ts `fresh`). A wait longer than {@link KEEP_UP_MS} turns
   * the pacing off for the rest of the commit: a stuck mirror never stalls the leader.
   */
  private keepUp(): (written: bigint) => Promise<void> {
    let off = false;
    return async (written) => {
      const target = written - KEEP_UP_REVISIONS;
      if (off || target <= this.cache.mirror.revision) return;
      await this.cache.waitFor(target, KEEP_UP_MS).catch(() => (off = true));
    };
  }

  /** Waits until the cache shows what a commit wrote, so the next pass plans from it. */
  private async seeOwnWrites(res: CommitResult): Promise<void> {
    const written =
      res.placementsRevision > res.unscheduledRevision
        ? res.placementsRevision
        : res.unscheduledRevision;
    if (written > 0n) await this.cache.waitFor(written);
  }
}

/** How many revisions a commit may write ahead of the leader's mirror (see `keepUp`). */
const KEEP_UP_REVISIONS = 8n;
/** The longest a commit's transaction waits for the mirror before the pacing is turned off. */
const KEEP_UP_MS = 2_000;

function delay(ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The mass-loss pause as the leader lives it. The rule is the {@link LossGuard}'s
 * (reschedule.ts, pure): when more than half of the machines vanish at once, moves of their
 * units wait. This is what the engine does around it: it feeds the guard every machine
 * appearance and loss (on every replica, so a new leader knows the recent history), counts
 * the machines a new term finds gone while they still hold placements as lost, re-decides
 * before every pass, answers an operator's request to end the pause
 * (`control/resume-rescheduling`, written by the API's ResumeRescheduling on any replica),
 * and says every pause and resume loudly: in the log (`RESCHEDULING PAUSED: ...`, repeated
 * every minute while it lasts) and in the leader's election key, where every replica's API
 * reads it (api/rescheduling.ts).
 */
import type { Logger } from 'pino';
import { fencedTxn, type Store, type Unsubscribe } from '../../store/index.js';
import type { ClusterCache } from '../view/cluster-cache.js';
import type { Leadership, Term } from './leadership.js';
import { LossGuard, type Clock, type GuardTransition, type PauseState } from './reschedule.js';

/** Options of a {@link MassLossPause}; the defaults are the daemon's (see EngineOptions). */
export interface MassLossPauseOptions {
  /** Machine losses within this window count as "at once". Default 30 000 ms. */
  readonly lossWindowMs?: number | undefined;
  /** A pause ends by itself after this long; 0 means never. Default 300 000 ms. */
  readonly pauseTimeoutMs?: number | undefined;
  /** After a machine loss, moves wait this long for further losses. Default 500 ms. */
  readonly lossSettleMs?: number | undefined;
  /** Remind the log of a pause this often. Default 60 000 ms. */
  readonly pauseReminderMs?: number | undefined;
  readonly now: Clock;
  /** Called when an operator ended a pause, so the engine plans again at once. */
  readonly onResume: () => void;
}

/** The leader's side of the mass-loss pause: one per engine. */
export class MassLossPause {
  private readonly guard: LossGuard;
  private readonly reminderMs: number;
  private readonly now: Clock;
  private readonly onResume: () => void;
  private lastReminder = 0;

  constructor(
    private readonly store: Store,
    private readonly cache: ClusterCache,
    private readonly leadership: Leadership,
    opts: MassLossPauseOptions,
    private readonly logger: Logger,
  ) {
    this.reminderMs = opts.pauseReminderMs ?? 60_000;
    this.now = opts.now;
    this.onResume = opts.onResume;
    this.guard = new LossGuard({
      ...(opts.lossWindowMs === undefined ? {} : { windowMs: opts.lossWindowMs }),
      ...(opts.pauseTimeoutMs === undefined ? {} : { pauseTimeoutMs: opts.pauseTimeoutMs }),
      ...(opts.lossSettleMs === undefined ? {} : { settleMs: opts.lossSettleMs }),
      now: this.now,
    });
  }

  /** Feeds the guard every machine the cache sees appear or vanish, leader or not. */
  follow(): Unsubscribe {
    return this.cache.onMachine((e) =>
      e.type === 'lost' ? this.guard.machineLost(e.id) : this.guard.machineSeen(e.id),
    );
  }

  /** The current pause, if rescheduling is paused. */
  get paused(): PauseState | undefined {
    return this.guard.paused;
  }

  /** Milliseconds until the last loss has settled (0 when moves may go ahead). */
  settleRemaining(): number {
    return this.guard.settleRemaining();
  }

  /**
   * A term begins, its cache caught up: machines that hold placements but are gone count as
   * lost now, so a pause outlives a change of leader (with a fresh timeout).
   */
  termBegins(term: Term): void {
    const live = new Set(this.cache.liveMachines());
    // Machines that hold placements but are gone: the mirror indexes placements by machine.
    const placedOn = this.cache.mirror.placementsOn.keys();
    const absent = new Set([...placedOn].filter((id) => !live.has(id)));
    this.guard.machinesAbsent(absent);
    if (this.guard.paused !== undefined) this.publish(term); // a pause outlives a term
  }

  /**
   * Before a pass: answers an operator's request, re-decides with the machines present now,
   * reports what changed and reminds the log of a pause that goes on. Returns what changed.
   */
  async beforePass(term: Term, log: Logger): Promise<GuardTransition> {
    await this.answerResumeRequest(term, log);
    const transition = this.guard.evaluate(this.cache.machineCount());
    this.report(transition, term);
    const pause = this.guard.paused;
    if (pause !== undefined && this.now() - this.lastReminder >= this.reminderMs) {
      this.lastReminder = this.now();
      log.warn({ pause }, 'RESCHEDULING PAUSED: units of lost machines are not being moved');
    }
    return transition;
  }

  /** Operator action: ends a pause now. Returns whether one was ended. */
  resume(term: Term | undefined): boolean {
    const t = this.guard.resume();
    if (t === undefined) return false;
    this.report(t, term);
    this.onResume();
    return true;
  }

  /**
   * An operator (the API's ResumeRescheduling) asked to end the pause that began at the
   * request's `since`: end it if it is still the current one, then delete the request, fenced.
   * A request for an older pause, or one made while none is on, ends nothing.
   */
  private async answerResumeRequest(term: Term, log: Logger): Promise<void> {
    const key = this.store.keys.resumeRescheduling();
    const request = this.cache.resumeRequest();
    if (request === undefined) return;
    const pause = this.guard.paused;
    if (pause !== undefined && BigInt(pause.since) === request.value.sinceUnixMs) {
      log.warn({ lost: pause.lost }, 'an operator ended the rescheduling pause');
      this.resume(term);
    } else {
      log.info({ since: request.value.sinceUnixMs }, 'resume request for a pause that is over');
    }
    await fencedTxn(this.store, term.fence, (b) => b.deleteIfModRevision(key, request.modRevision));
  }

  /** Logs a pause or resume loudly and publishes it in the leader's election key. */
  private report(t: GuardTransition, term: Term | undefined): void {
    if (t === undefined) return;
    if (t.type === 'paused') {
      this.lastReminder = this.now();
      this.logger.warn(
        { lost: t.pause.lost, total: t.pause.total, resumesAt: t.pause.resumesAt },
        `RESCHEDULING PAUSED: ${t.pause.reason}`,
      );
    } else {
      this.logger.warn({ why: t.why }, 'rescheduling resumed');
    }
    this.publish(term);
  }

  /** Publishes the pause (or its absence) in the term's election key, for every replica's API. */
  private publish(term: Term | undefined): void {
    if (term === undefined || term.signal.aborted) return;
    const status = { rescheduling: this.guard.paused ?? null };
    this.leadership.announce(term, status).catch((err: unknown) => {
      this.logger.debug({ err }, 'could not publish the rescheduling state');
    });
  }
}

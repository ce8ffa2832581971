/**
 * One unit's lifecycle on this machine with systemd [Service] semantics: runs (see
 * run.ts), restarts per Restart= with RestartSec= and an exponential back-off,
 * and reports every state change as the fields of UnitState. A supervisor never throws: a
 * unit that cannot run ends `failed` with a message saying why, and the agent goes on.
 */
import { setTimeout } from 'node:timers/promises';
import { formatDuration } from '../../../lib/duration.js';
import type { ContainerOptions, ServiceOptions } from '../../../unit/model.js';
import type { ImageStore } from '../../images/store.js';
import type { UnitState } from '../../../proto/flotilla/v1/records.js';
import type { FoundUnit, RuntimeDriver, UnitContext } from '../../runtime/driver.js';
import { describeError } from '../../runtime/errors.js';
import { toolMessage } from '../../runtime/spawn.js';
import type { LogStore } from '../../logs/log-store.js';
import { readMeta, writeMeta, type FinalState, type UnitMeta } from './meta.js';
import { START_LIMIT_DEFAULTS } from '../../../unit/start-limit.js';
import {
  applyChange,
  backoffDelay,
  initialState,
  recentStarts,
  shouldRestart,
  startLimitHit,
  startLimitMessage,
  type StateChange,
} from './policy.js';
import { isDetached, type Outcome, type Resume, type RunHost } from './host.js';
import { runOnce, stopCompleted } from './run.js';
import { prepareImage } from './image.js';
import { deliverSecrets, type SecretSource } from './secrets.js';
import { lostCapabilities } from '../../runtime/userns.js';

/** Timing knobs of supervision; {@link SUPERVISOR_DEFAULTS} documents the defaults. */
export interface SupervisorTimings {
  /** The longest pause between restarts. */
  readonly restartCapMs: number;
  /** The shortest (RestartSec=0 must not spin a crashing unit). */
  readonly restartFloorMs: number;
  /** A main process that ran this long resets the back-off to RestartSec=. */
  readonly restartResetMs: number;
  /** ExecStartPre=/ExecStartPost= lines and the main process's appearance are bounded by this. */
  readonly startTimeoutMs: number;
}

/** Back-off doubling to 30 s, reset after 10 s of running; 90 s to start (systemd's default). */
export const SUPERVISOR_DEFAULTS: SupervisorTimings = {
  restartCapMs: 30_000,
  restartFloorMs: 100,
  restartResetMs: 10_000,
  startTimeoutMs: 90_000,
};

/** What a supervisor is given by its manager. */
export interface SupervisorDeps {
  readonly driver: RuntimeDriver;
  readonly logs: LogStore;
  readonly machineId: string;
  readonly timings: SupervisorTimings;
  /** Every state change, in order. Must not throw. */
  readonly onState: (state: UnitState) => void;
  readonly now?: () => number;
  /** The machine's image store; image units fail without one. */
  readonly images?: ImageStore;
  /** Where named volumes of image units live. */
  readonly volumesDir?: string;
  /** Where the values of `Secret=` come from; absent: units naming one fail (fail closed). */
  readonly secrets?: SecretSource;
  /** The backstop of `StopOnDisconnect=` units (UnitContext.watchdog); absent: none. */
  readonly watchdog?: { readonly contactPath: string; readonly limitMs: number };
}

/** The unit a supervisor runs: its name, content hash and [Service] options. */
export interface SupervisedUnit {
  readonly name: string;
  readonly hash: string;
  readonly service: ServiceOptions;
  /** Set for an image unit: the image step runs before every lifecycle (image.ts). */
  readonly container?: ContainerOptions;
  /** `[X-Fleet] StopOnDisconnect=` is set; unknown (undefined) for a unit adopted as found. */
  readonly stopOnDisconnect?: boolean;
}

/** Supervises one unit. Create, then call exactly one of {@link start} or {@link adopt}. */
export class Supervisor {
  readonly unit: SupervisedUnit;
  /** Replaced once an image unit's root is ready (its service then runs on that root). */
  private context: UnitContext;
  private current: UnitState;
  private readonly deps: SupervisorDeps;
  private readonly now: () => number;
  private readonly stopCtl = new AbortController();
  private readonly detachCtl = new AbortController();
  private done: Promise<void> = Promise.resolve();
  private stopping: Promise<void> | undefined;
  private restarts = 0;
  /** While taking over a running unit: the Unix ms its process started, the state's `since`. */
  private adoptedSince: number | undefined;
  /**
   * An adopted main process no run has taken over yet. A stop that comes first (the agent's
   * first pass can come before the lifecycle reaches the run) still has to end it.
   */
  private untaken: Resume | undefined;
  private streak = 0;
  private completed = false;
  /** The unit's secrets are in its tmpfs (written at most once per lifecycle). */
  private secretsDelivered = false;
  /** When each recent run began (Unix ms, oldest first), for the start limit; bounded by it. */
  private starts: number[] = [];

  constructor(unit: SupervisedUnit, deps: SupervisorDeps) {
    this.unit = unit;
    this.deps = deps;
    this.now = deps.now ?? Date.now;
    this.context = this.guarded(deps.driver.context(unit.name, unit.service));
    this.current = initialState(
      unit.name,
      deps.machineId,
      unit.hash,
      this.ctx.containerId,
      this.now(),
    );
  }

  /** The unit's context with the driver: its container id, directory and [Service] options. */
  get ctx(): UnitContext {
    return this.context;
  }

  /** `ctx` with the StopOnDisconnect= backstop armed, disarmed, or (adopted) left as it was. */
  private guarded(ctx: UnitContext): UnitContext {
    const { stopOnDisconnect } = this.unit;
    const { watchdog } = this.deps;
    if (stopOnDisconnect === undefined) return ctx;
    return { ...ctx, watchdog: stopOnDisconnect && watchdog !== undefined ? watchdog : null };
  }

  /** The latest state (a copy is handed to listeners; this one is not to be mutated). */
  get state(): UnitState {
    return this.current;
  }

  /** Starts the unit from scratch. */
  start(): void {
    this.done = this.lifecycle(undefined);
  }

  /**
   * Takes over a unit a previous agent left: a running main process is watched (not
   * restarted), one that ended meanwhile is handled as if it had just ended, a unit that had
   * settled (failed, exited) is reported as it was.
   */
  adopt(found: FoundUnit, meta: UnitMeta): void {
    // A process that kept running has been up since it started, not since this agent came.
    if (found.running && meta.startedAt > 0) this.adoptedSince = meta.startedAt;
    this.restarts = meta.restarts;
    // The start limit and the back-off go on counting where the previous agent left them.
    this.starts = [...(meta.starts ?? [])];
    this.streak = meta.streak ?? 0;
    this.set({ restarts: meta.restarts, restartReason: meta.restartReason ?? '' });
    if (meta.final !== undefined) {
      this.completed = meta.final.subState === 'exited';
      this.set({ ...meta.final, pid: 0 });
      return;
    }
    const resume: Resume | undefined =
      found.main !== undefined && (found.running || found.exit !== undefined)
        ? {
            main: found.main,
            step: meta.step,
            startedAt: meta.startedAt,
            ...(found.exit !== undefined ? { exit: found.exit } : {}),
          }
        : undefined;
    if (resume?.exit === undefined) this.untaken = resume;
    this.done = this.lifecycle(resume);
  }

  /**
   * Stops the unit (ExecStop, KillSignal, SIGKILL after TimeoutStopSec, ExecStopPost),
   * removes its container and state directory, and resolves once it is inactive. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= this.stopNow();
    return this.stopping;
  }

  /**
   * Lets go of the unit without touching its processes (the agent shuts down or hands over);
   * after this no state change is reported.
   */
  async detach(): Promise<void> {
    this.detachCtl.abort();
    await this.done;
  }

  private async stopNow(): Promise<void> {
    this.stopCtl.abort();
    await this.done;
    if (this.detachCtl.signal.aborted) return;
    // The lifecycle ended before a run took the adopted process over (an image step cut
    // short, a failure): a run given it now terminates it at once, the stop being requested.
    const untaken = this.untaken;
    this.untaken = undefined;
    if (untaken !== undefined) await runOnce(this.host(), untaken).catch(() => undefined);
    if (this.completed) await stopCompleted(this.host());
    try {
      await this.deps.driver.remove(this.ctx);
    } catch (err) {
      this.note(`could not remove the container: ${describeError(err)}`);
    }
    this.deps.images?.release(this.ctx.dir);
    this.set({ activeState: 'inactive', subState: 'dead', pid: 0, message: '' });
    this.note('stopped');
  }

  private async lifecycle(resume: Resume | undefined): Promise<void> {
    try {
      if (this.unit.container !== undefined && !(await this.imageRoot(this.unit.container))) return;
      await this.deps.driver.prepare(this.ctx);
      if (resume === undefined) await this.persist(0, 0);
      const lost = lostCapabilities(this.ctx.service, this.deps.driver.idMapping(this.ctx.service));
      if (resume === undefined && lost !== undefined) this.note(lost);
      const limit = this.unit.service.startLimit ?? START_LIMIT_DEFAULTS;
      for (;;) {
        if (resume === undefined) {
          this.starts = [...recentStarts(this.starts, this.now(), limit), this.now()];
        }
        const failed = await this.secrets(resume);
        this.untaken = undefined; // the run owns the adopted process from here
        const outcome = failed ?? (await runOnce(this.host(), resume));
        resume = undefined;
        if (this.detachCtl.signal.aborted || this.stopCtl.signal.aborted) return;
        const { restart: policy, restartSecMs } = this.unit.service;
        const restart = outcome.restart === true || shouldRestart(policy, outcome.result);
        if (outcome.permanent || !restart) {
          await this.settle(outcome);
          return;
        }
        this.streak = outcome.ranMs >= this.deps.timings.restartResetMs ? 1 : this.streak + 1;
        const delay = backoffDelay(restartSecMs, this.streak, {
          capMs: this.deps.timings.restartCapMs,
          floorMs: this.deps.timings.restartFloorMs,
        });
        const why = outcome.message !== '' ? outcome.message : 'main process exited';
        // Counted when scheduled, so the auto-restart state already carries the new count.
        this.restarts += 1;
        const message = `${why}; restarting in ${formatDuration(delay)}`;
        this.set({
          activeState: 'activating',
          subState: 'auto-restart',
          pid: 0,
          restarts: this.restarts,
          message,
          restartReason: why,
        });
        this.note(message);
        // A stop or detach ends the pause early (resolved, not thrown): checked just below.
        const signal = AbortSignal.any([this.stopCtl.signal, this.detachCtl.signal]);
        await setTimeout(delay, undefined, { signal }).catch(() => undefined);
        if (this.detachCtl.signal.aborted || this.stopCtl.signal.aborted) return;
        // systemd's start limit, judged when the restart would start (as systemd's job does).
        const recent = recentStarts(this.starts, this.now(), limit);
        if (startLimitHit(recent, limit)) {
          const hit = startLimitMessage(recent, this.now(), limit, why);
          await this.settle({
            ...outcome,
            result: 'start-limit-hit',
            message: hit,
            completed: false,
          });
          return;
        }
      }
    } catch (err) {
      if (isDetached(err) || this.detachCtl.signal.aborted) return;
      // A bug, not the unit's fault: still never leave the unit without a state.
      const message = `supervisor error: ${describeError(err)}`;
      this.set({ activeState: 'failed', subState: 'failed', pid: 0, message });
      this.note(message);
    }
  }

  /**
   * Delivers the unit's secrets once per lifecycle (supervisor/secrets.ts); undefined when
   * done, else the outcome of a run that could not start.
   */
  private async secrets(resume: Resume | undefined): Promise<Outcome | undefined> {
    if (this.secretsDelivered) return undefined;
    const failure = await deliverSecrets(
      this.deps.driver,
      this.ctx,
      this.deps.secrets,
      resume !== undefined,
    );
    if (failure === undefined) {
      this.secretsDelivered = true;
      return undefined;
    }
    if (resume !== undefined) {
      // An adopted process has read its secrets long ago: it is taken over all the same, and
      // the delivery is tried again before the next process starts.
      this.note(`${failure.message} (tried again before the next start)`);
      return undefined;
    }
    return { result: 'resources', ranMs: 0, completed: false, ...failure };
  }

  /** Readies an image unit's root and context; false when stopped or detached meanwhile. */
  private async imageRoot(container: ContainerOptions): Promise<boolean> {
    const service = await prepareImage({
      unitDir: this.ctx.dir,
      volumesDir: `${this.deps.driver.layout.root}/volumes`,
      idMapping: (s) => this.deps.driver.idMapping(s),
      service: this.unit.service,
      container,
      images: this.deps.images,
      signal: AbortSignal.any([this.stopCtl.signal, this.detachCtl.signal]),
      retryCapMs: this.deps.timings.restartCapMs,
      set: (change) => this.set(change),
      note: (text) => this.note(text),
    });
    if (service === undefined) return false;
    this.context = this.guarded(this.deps.driver.context(this.unit.name, service));
    this.set({ image: service.image ?? '' });
    return true;
  }

  /** The end of a unit that will not restart: failed, dead, or (oneshot) exited. */
  private async settle(outcome: Outcome): Promise<void> {
    let final: FinalState;
    const exitStatus = outcome.exit?.status ?? this.current.exitStatus;
    const exitSignal = outcome.exit?.signal ?? this.current.exitSignal;
    if (outcome.completed) {
      this.completed = true;
      final = { activeState: 'active', subState: 'exited', exitStatus, exitSignal, message: '' };
    } else if (outcome.result === 'success') {
      final = { activeState: 'inactive', subState: 'dead', exitStatus, exitSignal, message: '' };
    } else {
      final = {
        activeState: 'failed',
        subState: 'failed',
        exitStatus,
        exitSignal,
        message: outcome.message,
      };
      this.note(`failed: ${outcome.message}`);
    }
    this.set({ ...final, pid: 0 });
    const meta = await readMeta(this.ctx.dir);
    if (meta !== undefined)
      await writeMeta(this.ctx.dir, { ...meta, final }).catch(() => undefined);
  }

  private host(): RunHost {
    return {
      ctx: this.ctx,
      driver: this.deps.driver,
      startTimeoutMs: this.deps.timings.startTimeoutMs,
      stopSignal: this.stopCtl.signal,
      detachSignal: this.detachCtl.signal,
      now: this.now,
      set: (change) => this.set(change),
      note: (text) => this.note(text),
      persist: (step, startedAt) => this.persist(step, startedAt),
      healthChecks: () => this.current.healthChecks,
      logReason: async () => {
        const lines = await this.deps.logs.tail(this.unit.name, 5).catch(() => []);
        const error = lines.filter((l) => /level=(error|fatal)/.test(l)).at(-1);
        return error !== undefined ? toolMessage(error) : '';
      },
    };
  }

  private persist(step: number, startedAt: number): Promise<void> {
    const { name, hash, service, container } = this.unit;
    const meta: UnitMeta = {
      version: 1,
      unit: name,
      hash,
      service,
      ...(container !== undefined ? { container } : {}),
      restarts: this.restarts,
      step,
      startedAt,
      starts: this.starts,
      streak: this.streak,
      restartReason: this.current.restartReason,
    };
    return writeMeta(this.ctx.dir, meta);
  }

  private set(change: StateChange): void {
    if (this.detachCtl.signal.aborted) return;
    const next = applyChange(this.current, change, this.adoptedSince ?? this.now());
    if (next === this.current) return;
    if (next.activeState === 'active') this.adoptedSince = undefined;
    this.current = next;
    try {
      this.deps.onState({ ...next });
    } catch {
      // A listener's bug must not stop supervision.
    }
  }

  private note(text: string): void {
    if (this.detachCtl.signal.aborted) return;
    this.deps.logs.note(this.unit.name, text).catch(() => undefined);
  }
}

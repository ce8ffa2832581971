/**
 * One run of a unit, start to end, with systemd's [Service] order: ExecStartPre, the main
 * process (or, for Type=oneshot, each ExecStart in turn to completion), ExecStartPost, then
 * when it ends or a stop is requested: ExecStop, KillSignal to what remains, SIGKILL after
 * TimeoutStopSec, ExecStopPost. The restart decision is the caller's (supervisor.ts).
 */
import type { ExecCommand, HealthOnFailure } from '../../../unit/model.js';
import { HealthMonitor } from './health.js';
import type { ExitResult, MainProcess } from '../../runtime/driver.js';
import { describeError, isPermanentFailure, isRuntimeError } from '../../runtime/errors.js';
import { normalizeSignal } from '../../runtime/proc.js';
import { prepareLaunch, resolveCommand, type Launch } from './launch.js';
import { describeExit, exitEnv, judgeExit, stepFailure, type ServiceResult } from './policy.js';
import { Detached, within, type Outcome, type Resume, type RunHost } from './host.js';

/** How the main part of a run ended, before the stop hooks. */
interface End {
  readonly result: ServiceResult;
  readonly message: string;
  readonly exit?: ExitResult;
  readonly permanent?: boolean;
  readonly completed?: boolean;
  readonly restart?: boolean;
}

/** The health check turned unhealthy and HealthOnFailure= asks for an action. */
interface Unhealthy {
  readonly kind: 'unhealthy';
  readonly why: string;
  readonly action: Exclude<HealthOnFailure, 'none'>;
}

/** A running health check and the promise its HealthOnFailure= action resolves. */
interface Health {
  readonly monitor: HealthMonitor;
  readonly unhealthy: Promise<Unhealthy>;
}

/**
 * Runs one lifecycle of the unit. Resolves with how it ended (never rejects for anything the
 * unit or the host did); rejects with a detach error (see {@link isDetached}) when the agent
 * let go of the unit meanwhile.
 */
export async function runOnce(host: RunHost, resume?: Resume): Promise<Outcome> {
  return new UnitRun(host).run(resume).catch((err: unknown) => {
    if (err instanceof Detached || host.detachSignal.aborted) throw new Detached();
    const message = describeError(err);
    return {
      result: 'resources',
      message,
      ranMs: 0,
      permanent: isPermanentFailure(err),
      completed: false,
    };
  });
}

/**
 * The stop of a oneshot unit that completed (active, exited): its ExecStop= and
 * ExecStopPost= lines, as systemd runs them for RemainAfterExit= units. Never rejects.
 */
export async function stopCompleted(host: RunHost): Promise<void> {
  const run = new UnitRun(host);
  await run.stopCompleted().catch((err: unknown) => host.note(describeError(err)));
}

class UnitRun {
  private launch: Launch | undefined;
  private main: MainProcess | undefined;
  /**
   * An adopted process that still runs, until this run takes it over (startStep). Whatever
   * ends the run before that, it ends this process too (endUntaken): a unit reported failed
   * or stopped must never leave it running where no agent will look for it again.
   */
  private untaken: MainProcess | undefined;
  private startedAt = 0;
  private stopped = false;
  private timedOut = false;
  private readonly stopRequested: Promise<'stop'>;

  constructor(private readonly host: RunHost) {
    this.stopRequested = new Promise((resolve) => {
      if (host.stopSignal.aborted) resolve('stop');
      else host.stopSignal.addEventListener('abort', () => resolve('stop'), { once: true });
    });
  }

  async run(resume?: Resume): Promise<Outcome> {
    const { service } = this.host.ctx;
    if (resume !== undefined && resume.exit === undefined) this.untaken = resume.main;
    try {
      this.launch = await prepareLaunch(this.host.driver, this.host.ctx);
    } catch (err) {
      await this.endUntaken(); // e.g. its EnvironmentFile= is gone: it cannot run as defined
      if (!isRuntimeError(err)) throw err;
      return {
        result: 'resources',
        message: err.message,
        ranMs: 0,
        permanent: true,
        completed: false,
      };
    }
    let end: End | undefined;
    try {
      if (resume === undefined) {
        this.host.set({ activeState: 'activating', subState: 'start-pre', pid: 0, message: '' });
        const pre = await this.hooks(
          'ExecStartPre',
          service.execStartPre,
          this.host.startTimeoutMs,
        );
        if (pre !== undefined) end = { result: 'exit-code', message: pre };
      }
      end ??= service.type === 'oneshot' ? await this.oneshot(resume) : await this.service(resume);
    } catch (err) {
      if (err instanceof Detached || this.host.detachSignal.aborted) throw new Detached();
      end = {
        result: 'resources',
        message: describeError(err),
        permanent: isPermanentFailure(err),
      };
      if (this.main !== undefined && !this.stopped) await this.terminate(this.main);
    }
    await this.endUntaken();
    const ranMs = this.startedAt > 0 ? this.host.now() - this.startedAt : 0;
    const completed = end.completed === true && !this.stopped;
    if (!completed) {
      if (this.main !== undefined && !this.stopped) await this.afterExit(this.main);
      await this.stopPost(end.exit, this.timedOut ? 'timeout' : end.result);
    }
    const result: ServiceResult = this.timedOut ? 'timeout' : end.result;
    return { ...end, result, ranMs, permanent: end.permanent ?? false, completed };
  }

  async stopCompleted(): Promise<void> {
    const { service } = this.host.ctx;
    this.launch = await prepareLaunch(this.host.driver, this.host.ctx);
    if (service.execStop.length > 0) {
      this.host.set({ activeState: 'deactivating', subState: 'stop' });
      await this.hooks('ExecStop', service.execStop, service.timeoutStopSecMs);
    }
    await this.stopPost(undefined, 'success');
  }

  /** Type=simple and exec: one main process, ExecStartPost beside it. */
  private async service(resume: Resume | undefined): Promise<End> {
    const { ctx } = this.host;
    const cmd = ctx.service.execStart[0];
    if (cmd === undefined)
      return { result: 'resources', message: 'no ExecStart=', permanent: true };
    // Stopped before it began: nothing to start. An adopted process runs already, though: it
    // is taken over below and, the stop being requested, terminated at once.
    if (this.host.stopSignal.aborted && resume === undefined)
      return { result: 'success', message: '' };
    const main = await this.startStep(0, cmd, resume);
    if (main.pid === 0) return this.notStarted(cmd, main);
    const exitP = this.watch(main);
    if (resume?.exit !== undefined) return this.judged(cmd, resume.exit);
    if (resume === undefined) {
      const failedExec = ctx.service.type === 'exec' ? await this.executed(main, exitP) : undefined;
      if (failedExec !== undefined) return this.judged(cmd, failedExec);
      if (ctx.service.execStartPost.length > 0 && !this.host.stopSignal.aborted) {
        this.host.set({ activeState: 'activating', subState: 'start-post', pid: main.pid });
        const post = await this.postHooks(main);
        if (post !== undefined) {
          const exit = await this.terminate(main, exitP);
          return { result: 'exit-code', message: post, exit };
        }
      }
    }
    if (!this.host.stopSignal.aborted) {
      this.host.set({ activeState: 'active', subState: 'running', pid: main.pid, message: '' });
      if (resume === undefined) this.host.note(`started, main pid ${main.pid}`);
    }
    const health = this.startHealth(main);
    const first = await Promise.race([
      exitP,
      this.stopRequested,
      ...(health !== undefined ? [health.unhealthy] : []),
    ]);
    await health?.monitor.stop();
    if (typeof first === 'object' && 'kind' in first)
      return this.onUnhealthy(cmd, main, exitP, first);
    // A verdict is about a running process: it goes with it (unhealthy ones stay, above).
    if (health !== undefined) this.host.set({ health: '', healthFailures: 0 });
    const exit = first === 'stop' ? await this.terminate(main, exitP) : first;
    return this.stopped ? { result: 'success', message: '', exit } : this.judged(cmd, exit);
  }

  /** Starts the unit's HealthCmd= beside `main`, if it has one. */
  private startHealth(main: MainProcess): Health | undefined {
    const { ctx, driver } = this.host;
    const check = ctx.service.health;
    if (check === undefined || this.host.stopSignal.aborted) return undefined;
    const launch = this.need();
    let act: (u: Unhealthy) => void = () => undefined;
    const unhealthy = new Promise<Unhealthy>((resolve) => (act = resolve));
    const monitor = new HealthMonitor({
      check,
      driver,
      ctx,
      main,
      // podman's CMD-SHELL form: the shell expands $VARs from the unit's environment.
      spec: {
        path: '/bin/sh',
        args: ['-c', check.command],
        env: Object.fromEntries(launch.env),
        cwd: launch.cwd,
        user: launch.user,
      },
      startedAt: this.startedAt,
      now: this.host.now,
      report: (r) => this.host.set(r),
      note: (text) => this.host.note(text),
      onUnhealthy: (why) => {
        if (check.onFailure !== 'none') act({ kind: 'unhealthy', why, action: check.onFailure });
      },
    });
    monitor.start(this.host.healthChecks());
    return { monitor, unhealthy };
  }

  /**
   * HealthOnFailure=: `kill` SIGKILLs the unit and lets Restart= decide; `restart` stops it
   * (ExecStop, KillSignal...) and restarts it whatever Restart= says; `stop` stops it and it
   * stays failed.
   */
  private async onUnhealthy(
    cmd: ExecCommand,
    main: MainProcess,
    exitP: Promise<ExitResult>,
    u: Unhealthy,
  ): Promise<End> {
    const message = `unhealthy, ${u.why}; HealthOnFailure=${u.action}`;
    this.host.note(message);
    if (u.action === 'kill') {
      await this.host.driver.kill(this.host.ctx, main, 'SIGKILL', 'all');
      const exit = (await within(exitP, 30_000)) ?? { status: -1, signal: '' };
      return { ...this.judged(cmd, exit), message };
    }
    const exit = await this.terminate(main, exitP);
    return u.action === 'restart'
      ? { result: 'exit-code', message, exit, restart: true }
      : { result: 'exit-code', message, exit, permanent: true };
  }

  /** Type=oneshot: every ExecStart= line in order, each to completion, then ExecStartPost. */
  private async oneshot(resume: Resume | undefined): Promise<End> {
    const { service } = this.host.ctx;
    let exit: ExitResult | undefined;
    for (let step = resume?.step ?? 0; step < service.execStart.length; step++) {
      const cmd = service.execStart[step];
      const resumed = step === resume?.step ? resume : undefined;
      // A stop skips the steps still to come, never an adopted one that runs (ended below).
      if (cmd === undefined || (this.host.stopSignal.aborted && resumed === undefined)) break;
      const main = await this.startStep(step, cmd, resumed);
      if (main.pid === 0) return this.notStarted(cmd, main);
      this.host.set({ activeState: 'activating', subState: 'start', pid: main.pid });
      const exitP = this.watch(main);
      const first = resumed?.exit ?? (await Promise.race([exitP, this.stopRequested]));
      exit = first === 'stop' ? await this.terminate(main, exitP) : first;
      this.main = undefined;
      this.host.set({ pid: 0, exitStatus: exit.status, exitSignal: exit.signal });
      if (this.stopped) return { result: 'success', message: '', exit };
      const judged = this.judged(cmd, exit);
      if (judged.result !== 'success') return judged;
    }
    if (this.host.stopSignal.aborted)
      return { result: 'success', message: '', ...(exit ? { exit } : {}) };
    const post = service.execStartPost.length > 0 ? await this.postHooks(undefined) : undefined;
    if (post !== undefined)
      return { result: 'exit-code', message: post, ...(exit ? { exit } : {}) };
    return { result: 'success', message: '', completed: true, ...(exit ? { exit } : {}) };
  }

  /** Starts ExecStart line `step`, or takes over the resumed process. */
  private async startStep(
    step: number,
    cmd: ExecCommand,
    resume: Resume | undefined,
  ): Promise<MainProcess> {
    const { driver, ctx } = this.host;
    if (resume !== undefined) {
      this.startedAt = resume.startedAt;
      this.main = resume.main;
      this.untaken = undefined;
      return resume.main;
    }
    const spec = await resolveCommand(driver, ctx, this.need(), 'ExecStart', cmd);
    this.startedAt = this.host.now();
    await this.host.persist(step, this.startedAt);
    this.main = await driver.start(ctx, spec, this.host.startTimeoutMs);
    return this.main;
  }

  /** runc could not even create the container: its reason is in the unit's log. */
  private async notStarted(cmd: ExecCommand, main: MainProcess): Promise<End> {
    const exit = await this.host.driver.wait(this.host.ctx, main, this.host.detachSignal);
    this.main = undefined;
    this.startedAt = 0;
    const why = await this.host.logReason();
    const message = `ExecStart=${cmd.path} (line ${cmd.line}) could not be started (${describeExit(exit)})`;
    return { result: 'exit-code', message: why !== '' ? `${message}: ${why}` : message, exit };
  }

  private watch(main: MainProcess): Promise<ExitResult> {
    const exitP = this.host.driver.wait(this.host.ctx, main, this.host.detachSignal);
    exitP.catch(() => undefined);
    return exitP;
  }

  /**
   * Type=exec: waits until the program itself runs. Resolves with the exit when the process
   * ended before (or instead of) executing it, so the unit never looks active.
   */
  private async executed(
    main: MainProcess,
    exitP: Promise<ExitResult>,
  ): Promise<ExitResult | undefined> {
    for (;;) {
      const exit = await within(exitP, 10);
      if (exit !== undefined) return exit;
      if (await this.host.driver.isExecuted(main)) return within(exitP, 0);
    }
  }

  private judged(cmd: ExecCommand, exit: ExitResult): End {
    const result = judgeExit(exit, cmd.ignoreFailure);
    return {
      result,
      message: result === 'success' ? '' : stepFailure('ExecStart', cmd, exit),
      exit,
    };
  }

  private need(): Launch {
    if (this.launch === undefined) throw new Error('launch used before it was prepared');
    return this.launch;
  }

  /**
   * Runs hook lines in order. Start hooks stop at the first failure and return its message;
   * stop hooks run all lines (failures are only logged). A stop request kills start hooks.
   */
  private async hooks(
    key: string,
    cmds: readonly ExecCommand[],
    timeoutMs: number,
    main?: MainProcess,
    extra?: ReadonlyMap<string, string>,
  ): Promise<string | undefined> {
    const { driver, ctx } = this.host;
    const stopping = key === 'ExecStop' || key === 'ExecStopPost';
    for (const cmd of cmds) {
      if (!stopping && this.host.stopSignal.aborted) return undefined;
      const env = new Map(extra);
      if (main !== undefined && main.pid > 0) env.set('MAINPID', String(driver.unitPid(main)));
      const spec = await resolveCommand(driver, ctx, this.need(), key, cmd, env);
      const exit = await driver.exec(ctx, spec, {
        timeoutMs,
        ...(main !== undefined ? { main } : {}),
        // The agent letting go ends hooks too; a stop request ends only the start hooks.
        signal: stopping
          ? this.host.detachSignal
          : AbortSignal.any([this.host.stopSignal, this.host.detachSignal]),
      });
      if (judgeExit(exit, cmd.ignoreFailure) !== 'success') {
        const message = stepFailure(key, cmd, exit);
        this.host.note(message);
        if (!stopping) return this.host.stopSignal.aborted ? undefined : message;
      }
    }
    return undefined;
  }

  private postHooks(main: MainProcess | undefined): Promise<string | undefined> {
    return this.hooks(
      'ExecStartPost',
      this.host.ctx.service.execStartPost,
      this.host.startTimeoutMs,
      main,
    );
  }

  /**
   * A requested stop: ExecStop, then KillSignal to every process of the unit, SIGKILL once
   * TimeoutStopSec (counted from the request) has passed.
   */
  private async terminate(main: MainProcess, exitP?: Promise<ExitResult>): Promise<ExitResult> {
    const { driver, ctx } = this.host;
    const { service } = ctx;
    this.stopped = true;
    const ended = exitP ?? this.watch(main);
    this.host.set({ activeState: 'deactivating', subState: 'stop' });
    const deadline = this.host.now() + service.timeoutStopSecMs;
    const left = (): number => Math.max(0, deadline - this.host.now());
    if (this.launch !== undefined && (await within(ended, 0)) === undefined) {
      await this.hooks('ExecStop', service.execStop, left(), main).catch((err: unknown) =>
        this.host.note(describeError(err)),
      );
    }
    let exit = await within(ended, 0);
    if (exit === undefined) {
      await driver.kill(ctx, main, normalizeSignal(service.killSignal) ?? 'SIGTERM', 'all');
      exit = await within(ended, left());
    }
    if (exit === undefined) {
      this.timedOut = true;
      this.host.note(`did not stop within TimeoutStopSec=${service.timeoutStopSecMs} ms: SIGKILL`);
      await driver.kill(ctx, main, 'SIGKILL', 'all');
      exit = (await within(ended, 30_000)) ?? { status: -1, signal: '' };
    }
    await driver.kill(ctx, main, 'SIGKILL', 'all');
    this.host.set({ pid: 0, exitStatus: exit.status, exitSignal: exit.signal });
    this.host.note(`stopped: main process ${describeExit(exit)}`);
    return exit;
  }

  /** Terminates the adopted process if the run ends without having taken it over. */
  private async endUntaken(): Promise<void> {
    const main = this.untaken;
    this.untaken = undefined;
    // An agent letting go (detach) leaves every process as it is.
    if (main !== undefined && !this.host.detachSignal.aborted) await this.terminate(main);
  }

  /** The main process ended by itself: ExecStop still runs (as in systemd), leftovers die. */
  private async afterExit(main: MainProcess): Promise<void> {
    const { driver, ctx } = this.host;
    const { service } = ctx;
    const exit = await driver.wait(ctx, main, this.host.detachSignal);
    this.host.set({ pid: 0, exitStatus: exit.status, exitSignal: exit.signal });
    this.host.note(`main process ${describeExit(exit)}`);
    if (service.execStop.length > 0) {
      this.host.set({ activeState: 'deactivating', subState: 'stop' });
      await this.hooks('ExecStop', service.execStop, service.timeoutStopSecMs).catch(
        (err: unknown) => this.host.note(describeError(err)),
      );
    }
    await driver.kill(ctx, main, 'SIGKILL', 'all');
  }

  private async stopPost(exit: ExitResult | undefined, result: ServiceResult): Promise<void> {
    const { service } = this.host.ctx;
    if (service.execStopPost.length === 0 || this.launch === undefined) return;
    this.host.set({ activeState: 'deactivating', subState: 'stop-post', pid: 0 });
    await this.hooks(
      'ExecStopPost',
      service.execStopPost,
      service.timeoutStopSecMs,
      undefined,
      exitEnv(exit, result),
    ).catch((err: unknown) => this.host.note(describeError(err)));
  }
}

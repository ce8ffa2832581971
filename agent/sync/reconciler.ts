/**
 * The agent's reconcile loop, effectful half: mirrors `placements/<own id>/` (list + watch,
 * so only this machine's agent wakes for its placements), asks {@link UnitFiles} for the files
 * they name, computes tasks with {@link computeTasks} and executes them through the
 * UnitManager. It runs on every placement change, every fetched file, every finished task
 * and a periodic tick: level-triggered, so a missed event costs a tick, never correctness.
 *
 * Cut off from etcd the mirror keeps its content, so nothing is stopped (availability
 * first); once the watch resumes (or re-lists after compaction) the deletions that happened
 * meanwhile arrive and those units stop.
 */
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import type { Placement, PortAssignment, UnitState } from '../../proto/flotilla/v1/records.js';
import { codecs, WatchCache, type Store } from '../../store/index.js';
import type { UnitManager } from '../units/unit-manager.js';
import {
  computeTasks,
  type ActualUnit,
  type Connection,
  type DesiredUnit,
  type FileStatus,
  type Task,
} from './reconcile-tasks.js';
import type { StateReporter } from './state-reporter.js';
import { UnitFiles } from './unit-files.js';
import type { EndpointPublisher } from './endpoints.js';
import { UnitServing } from './serving.js';

/** Options of {@link Reconciler}. */
export interface ReconcilerOptions {
  readonly machineId: string;
  /** The periodic pass. */
  readonly tickMs: number;
  /** Where the agent stands with etcd now (for StopOnDisconnect=). */
  readonly connection: () => Connection;
  /**
   * Units starting at once (until each runs, fails or 10 s pass). Many placements arriving
   * together (a failover) then start a few at a time, the first ones fast, instead of all
   * crawling together through one contended CPU. Default: four per CPU, at least 8.
   */
  readonly startConcurrency?: number;
  /**
   * StopOnDisconnect= values above this cannot stop a unit before its lease (and with it the
   * machine) expires, so the leader may place it elsewhere first: such units get a warning.
   */
  readonly stopOnDisconnectLimitMs?: number;
  /**
   * Endpoint records of the units that declare [X-Service]: told what each running unit
   * serves, and withdrawn (then drained, DrainSec=) before every stop, restart or update.
   */
  readonly endpoints?: EndpointPublisher;
}

/** How long a start holds its slot at most (a long ExecStartPre= must not block the rest). */
const START_SLOT_MAX_MS = 10_000;

/** A state the agent reports for a unit it does not run (loaded, or a file it cannot use). */
interface Mark {
  readonly unit: ActualUnit;
  readonly state: UnitState;
}

/** Runs the reconcile loop of one machine. */
export class Reconciler {
  readonly placements: WatchCache<Placement>;
  private readonly files: UnitFiles;
  private readonly marks = new Map<string, Mark>();
  /** Whether each unit the agent knows is Global, as its file said when last read. */
  private readonly globals = new Map<string, boolean>();
  private readonly held = new Set<string>();
  private readonly serving: UnitServing;
  private readonly busy = new Map<string, Promise<void>>();
  private readonly unsubscribe: () => void;
  private timer: NodeJS.Timeout | undefined;
  private readonly startQueue: (() => void)[] = [];
  private startsRunning = 0;
  private readonly startConcurrency: number;
  private scheduled = false;
  private started = false;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly units: UnitManager,
    private readonly reporter: StateReporter,
    private readonly log: Logger,
    private readonly opts: ReconcilerOptions,
  ) {
    this.placements = new WatchCache(store, {
      prefix: store.keys.placementsOn(opts.machineId),
      codec: codecs.placement,
    });
    this.serving = new UnitServing(opts.endpoints, log);
    this.startConcurrency = opts.startConcurrency ?? Math.max(8, availableParallelism() * 4);
    this.files = new UnitFiles(store, log, { onChange: () => this.schedule() });
    this.placements.onError((err) => log.debug({ err }, 'placement watch: retrying'));
    this.unsubscribe = this.placements.on((event) => {
      if (event.type === 'resync') reporter.rewriteAll();
      else if (event.type === 'put') reporter.touch(event.value.unit);
      this.schedule();
    });
  }

  /** Starts the loop: the first pass runs once the placements are listed. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.timer = setInterval(() => this.schedule(), this.opts.tickMs);
    this.placements.ready().then(
      () => this.schedule(),
      () => undefined, // closed before the first listing
    );
  }

  /** True when `name` is placed on this machine (as far as the mirror knows). */
  isPlaced(name: string): boolean {
    return this.placements.get(this.store.keys.placement(this.opts.machineId, name)) !== undefined;
  }

  /**
   * Whether `name` is a Global unit (its state then has a key per machine); undefined until
   * its file has been read. A file that cannot be read or parsed keeps what was known.
   */
  isGlobal(name: string): boolean | undefined {
    return this.globals.get(name);
  }

  /** The names placed here, plus those the agent runs or reports. */
  known(): Set<string> {
    const names = new Set<string>(this.marks.keys());
    for (const entry of this.placements.entries()) names.add(entry.value.unit);
    for (const state of this.units.list()) names.add(state.name);
    return names;
  }

  /**
   * Lets StopOnDisconnect units start again: call once back online. A held unit is released
   * only when a fresh read of etcd (not the mirror, which may still be catching up) shows it
   * placed here, so a unit moved elsewhere meanwhile is never started here again.
   */
  async resume(): Promise<void> {
    if (this.held.size === 0) return;
    const listing = await this.store.listRecords(
      codecs.placement,
      this.store.keys.placementsOn(this.opts.machineId),
    );
    const placedNow = new Set(listing.items.map((item) => item.value.unit));
    let released = false;
    for (const name of [...this.held]) {
      if (!placedNow.has(name)) continue;
      this.held.delete(name);
      released = true;
    }
    if (released) this.schedule();
  }

  /** Runs a pass soon (coalesced: many triggers, one pass). */
  schedule(): void {
    if (this.scheduled || this.closed || !this.started) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.closed) this.pass();
    });
  }

  /** Stops the loop and waits for the tasks under way. Units are left as they are. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.unsubscribe();
    this.files.close();
    await this.placements.close();
    await Promise.all(this.busy.values());
  }

  /** One pass: desired and actual now, the tasks, each started unless its unit is busy. */
  private pass(): void {
    if (this.placements.revision === 0n) return; // not listed yet: adopted units keep running
    const now = Date.now();
    const desired: DesiredUnit[] = [];
    const placed = new Set<string>();
    for (const { value: p } of this.placements.entries()) {
      placed.add(p.unit);
      const state = p.desiredState === 'loaded' ? 'loaded' : 'launched';
      const file = this.files.status(p.unit, p.hash, now);
      this.learnScope(p.unit, file);
      desired.push({ name: p.unit, hash: p.hash, state, file });
    }
    this.files.retain(placed);
    // A held unit the mirror no longer places here moved away: nothing left to hold.
    for (const name of this.held) if (!placed.has(name)) this.held.delete(name);
    const actual: ActualUnit[] = [...this.marks.values()].map((m) => m.unit);
    for (const s of this.units.list()) {
      if (this.marks.has(s.name)) continue;
      // Ports changed under it (the leader picked others): a changed hash, as far as the
      // tasks go, so it restarts with the new ones (withdrawn and drained first).
      const moved = this.serving.portsMoved(s.name, this.placedPorts(s.name));
      actual.push({ name: s.name, hash: moved ? `${s.hash}+ports` : s.hash, kind: 'running' });
    }
    const known = new Set([...placed, ...actual.map((a) => a.name)]);
    for (const name of this.globals.keys()) if (!known.has(name)) this.globals.delete(name);
    const tasks = computeTasks({
      desired,
      actual,
      held: this.held,
      connection: this.opts.connection(),
    });
    this.serveSteady(desired, tasks);
    for (const task of tasks) {
      if (this.busy.has(task.name)) continue;
      const run = this.execute(task)
        .catch((err: unknown) => this.log.error({ err, task: describe(task) }, 'task failed'))
        .finally(() => {
          this.busy.delete(task.name);
          this.schedule();
        });
      this.busy.set(task.name, run);
    }
  }

  private async execute(task: Task): Promise<void> {
    this.log.debug({ task: describe(task) }, 'reconcile');
    switch (task.type) {
      case 'start':
        this.marks.delete(task.name);
        if (task.restart)
          this.log.info({ unit: task.name, hash: task.hash }, 'unit changed: restarting');
        else this.log.info({ unit: task.name, hash: task.hash }, 'starting unit');
        this.checkStopOnDisconnect(task.name, task.def.fleet.stopOnDisconnectMs);
        // A restart takes the old version out of service first, then drains it.
        if (task.restart) {
          await this.serving.drain(task.name);
          // Same file, other ports: the manager would keep it running as it is.
          if (this.units.get(task.name)?.hash === task.hash) await this.units.stop(task.name);
        }
        await this.withStartSlot(async () => {
          const settled = this.settled(task.name);
          const def = this.serving.starting(task.name, task.def, this.placedPorts(task.name));
          await this.units.start(def, task.hash);
          await settled;
        });
        return;
      case 'stop':
        if (task.reason === 'disconnected') {
          this.held.add(task.name);
          this.log.warn({ unit: task.name }, 'cut off from etcd past StopOnDisconnect=: stopping');
          await this.units.logs
            .note(task.name, 'cut off from etcd for longer than StopOnDisconnect=: stopping')
            .catch(() => undefined);
          await this.serving.drain(task.name);
          await this.units.stop(task.name);
          return;
        }
        this.log.info({ unit: task.name }, 'unit no longer placed here: stopping');
        await this.stopLogged(task.name);
        if (!this.isPlaced(task.name)) this.reporter.remove(task.name);
        return;
      case 'load':
        await this.serving.drain(task.name);
        await this.units.stop(task.name);
        this.mark(task.name, task.hash, 'loaded', {
          loadState: 'loaded',
          activeState: 'inactive',
          subState: 'dead',
          message: '',
        });
        return;
      case 'fail':
        await this.serving.drain(task.name);
        await this.units.stop(task.name);
        this.log.warn({ unit: task.name, reason: task.message }, 'unit cannot run');
        await this.units.logs.note(task.name, task.message).catch(() => undefined);
        this.mark(task.name, task.hash, task.loadState === 'error' ? 'invalid' : 'not-found', {
          loadState: task.loadState,
          activeState: 'failed',
          subState: 'failed',
          message: task.message,
        });
        return;
      case 'forget':
        this.marks.delete(task.name);
        if (!this.isPlaced(task.name)) this.reporter.remove(task.name);
        return;
    }
  }

  /**
   * Takes `name` out of service and stops it, saying at debug level how long each half took,
   * so a stop that seems to hang shows whether the drain or the unit's own stop is waiting.
   */
  private async stopLogged(name: string): Promise<void> {
    const began = Date.now();
    await this.serving.drain(name);
    const drained = Date.now();
    this.log.debug({ unit: name, drainMs: drained - began }, 'out of service: stopping the unit');
    await this.units.stop(name);
    const state = this.units.get(name);
    this.log.debug(
      { unit: name, stopMs: Date.now() - drained, state: state?.subState ?? 'forgotten' },
      'unit stopped',
    );
  }

  /** The ports `name`'s placement here holds (empty without Port=). */
  private placedPorts(name: string): PortAssignment[] {
    const key = this.store.keys.placement(this.opts.machineId, name);
    return this.placements.get(key)?.value.ports ?? [];
  }

  /**
   * Level-triggered serving: every unit placed launched that runs at the placement's hash
   * with nothing to do (no task, not busy) serves what its file declares. So units adopted
   * from a previous agent, and units whose placement's ports or tags changed, publish too.
   */
  private serveSteady(desired: readonly DesiredUnit[], tasks: readonly Task[]): void {
    if (this.opts.endpoints === undefined) return;
    const acting = new Set(tasks.map((t) => t.name));
    for (const d of desired) {
      if (d.state !== 'launched' || d.file.kind !== 'ok' || d.file.def.xService === undefined)
        continue;
      if (acting.has(d.name) || this.busy.has(d.name) || this.held.has(d.name)) continue;
      if (this.units.get(d.name)?.hash !== d.hash) continue;
      this.serving.serve(d.name, d.file.def, this.placedPorts(d.name));
    }
  }

  /**
   * Remembers whether `name` is Global once its file is read; when that is new or changed,
   * the reporter writes its state (again) to the key it now belongs at.
   */
  private learnScope(name: string, file: FileStatus): void {
    const known = this.globals.get(name);
    let global = known;
    if (file.kind === 'ok') global = file.def.fleet.global;
    else if (file.kind !== 'pending') global = known ?? false; // a file it cannot use
    if (global === undefined || global === known) return;
    this.globals.set(name, global);
    this.reporter.touch(name);
  }

  private checkStopOnDisconnect(name: string, ms: number): void {
    const limit = this.opts.stopOnDisconnectLimitMs;
    if (limit === undefined || ms <= limit) return;
    this.log.warn(
      { unit: name, stopOnDisconnectMs: ms, limitMs: limit },
      'StopOnDisconnect= is longer than the lease leaves: the unit may run twice during a partition',
    );
  }

  /** Runs `fn` once fewer than `startConcurrency` starts are under way. */
  private async withStartSlot(fn: () => Promise<void>): Promise<void> {
    if (this.startsRunning >= this.startConcurrency) {
      await new Promise<void>((resolve) => this.startQueue.push(resolve));
    } else {
      this.startsRunning += 1;
    }
    try {
      await fn();
    } finally {
      const next = this.startQueue.shift();
      if (next !== undefined)
        next(); // hands the slot over
      else this.startsRunning -= 1;
    }
  }

  /** Resolves once `name` runs, has failed or ended, or after {@link START_SLOT_MAX_MS}. */
  private settled(name: string): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        unsubscribe();
        resolve();
      };
      const timer = setTimeout(done, START_SLOT_MAX_MS);
      const unsubscribe = this.units.onState((s) => {
        if (s.name !== name) return;
        if (s.pid > 0 || s.activeState === 'failed' || s.subState === 'exited') done();
        else if (s.subState === 'auto-restart' || s.subState === 'dead') done();
      });
    });
  }

  private mark(
    name: string,
    hash: string,
    kind: Exclude<ActualUnit['kind'], 'running'>,
    fields: Pick<UnitState, 'loadState' | 'activeState' | 'subState' | 'message'>,
  ): void {
    const state: UnitState = {
      name,
      machine: this.opts.machineId,
      hash,
      containerId: '',
      image: '',
      pid: 0,
      exitStatus: -1,
      exitSignal: '',
      restarts: 0,
      since: BigInt(Date.now()),
      health: '',
      healthFailures: 0,
      healthChecks: [],
      restartReason: '',
      ...fields,
    };
    this.marks.set(name, { unit: { name, hash, kind }, state });
    this.reporter.report(state);
  }
}

function describe(task: Task): string {
  return task.type === 'stop' ? `stop ${task.name} (${task.reason})` : `${task.type} ${task.name}`;
}

/**
 * The agent's units on one machine: the API the agent daemon's reconcile loop calls. It
 * starts, stops and adopts units, each under its own {@link Supervisor}, and reports every
 * state change. It never talks to etcd; it never throws for a unit's fault (a unit that
 * cannot run is a `failed` state with a message).
 *
 * @example
 *   const units = await UnitManager.create({ machineId, stateDir: '/var/lib/flotilla' });
 *   units.onState((s) => reportToEtcd(s));
 *   const found = await units.adopt();          // after an agent restart
 *   await units.start(parseUnit(name, text));   // no-op when already running with that hash
 *   await units.stop('web@1.service');
 */
import type { UnitState } from '../../proto/flotilla/v1/records.js';
import type { ServiceOptions, UnitDefinition } from '../../unit/model.js';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REGISTRY_DEFAULTS, type RegistryOptions } from '../../registry/skopeo.js';
import { ImageStore } from '../images/store.js';
import { createDriver, tightenMachineFiles, type UsernsSetting } from '../runtime/index.js';
import type { DriverName, RuntimeDriver } from '../runtime/driver.js';
import { describeError } from '../runtime/errors.js';
import { LogStore } from '../logs/log-store.js';
import { readMeta } from './supervisor/meta.js';
import type { SecretSource } from './supervisor/secrets.js';
import { initialState } from './supervisor/policy.js';
import {
  SUPERVISOR_DEFAULTS,
  Supervisor,
  type SupervisorTimings,
} from './supervisor/supervisor.js';

/** Options of {@link UnitManager.create}. */
export interface UnitManagerOptions {
  readonly machineId: string;
  /** Root of the agent's state; units and logs live under `<stateDir>/<machine>/`. */
  readonly stateDir: string;
  /** `auto` (default): runc where installed and root, else process. Or a driver instance. */
  readonly driver?: DriverName | 'auto' | RuntimeDriver;
  /** The runc binary (default `runc` from PATH). */
  readonly runc?: string;
  /** runc's state root (default runc's own, /run/runc). */
  readonly runcRoot?: string;
  /** runc containers' user namespace (`--userns-remap`, runtime/userns.ts); default `off`. */
  readonly usernsRemap?: UsernsSetting;
  /** Told what the user namespace setting came to on this host, and why. */
  readonly onUserns?: (text: string) => void;
  /** Per-unit log cap before rotation. Default 10 MiB. */
  readonly logMaxBytes?: number;
  /** How often logs are checked against the cap. Default 1000 ms. */
  readonly logCheckMs?: number;
  /** Restart back-off and start timeout; see {@link SUPERVISOR_DEFAULTS}. */
  readonly timings?: Partial<SupervisorTimings>;
  /**
   * Image units: how registries are reached and the store's budget. The store lives in
   * `<stateDir>/<machine>/images` (drivers with the `images` capability only: runc).
   */
  readonly images?: { readonly registry: RegistryOptions; readonly maxBytes: number };
  /**
   * How long after the agent's last confirmed contact with etcd ({@link recordContact}) the
   * shim of a `StopOnDisconnect=` unit kills it by itself; absent: never.
   */
  readonly contactLimitMs?: number;
  /**
   * The values of the secrets units name (`Secret=`), read and opened by the agent's sync/
   * layer; absent: a unit naming a secret fails at once (it never runs without it).
   */
  readonly secrets?: SecretSource;
}

/** A unit a previous agent left on this machine, as {@link UnitManager.adopt} found it. */
export interface AdoptedUnit {
  readonly name: string;
  readonly hash: string;
  readonly containerId: string;
  /** The main process's pid when it still runs (unchanged: it was not restarted); else 0. */
  readonly pid: number;
  readonly running: boolean;
}

/** Options for removing a leftover directory whose meta.json is gone: nothing runs. */
function emptyService(): ServiceOptions {
  return {
    type: 'simple',
    execStartPre: [],
    execStart: [],
    execStartPost: [],
    execStop: [],
    execStopPost: [],
    restart: 'no',
    restartSecMs: 0,
    timeoutStopSecMs: 0,
    killSignal: 'SIGTERM',
    environment: [],
    environmentFiles: [],
    workingDirectory: '',
    user: '',
    rootDirectory: '',
    privateNetwork: false,
    resources: { cpuMillicores: 0, memoryBytes: 0, tasks: 0 },
  };
}

/** Listener of {@link UnitManager.onState}. */
export type StateListener = (state: UnitState) => void;

/** Supervises the units placed on one machine. */
export class UnitManager {
  readonly machineId: string;
  readonly driver: RuntimeDriver;
  readonly logs: LogStore;
  private readonly timings: SupervisorTimings;
  /** `<stateDir>/<machine>/contact`: the agent's last confirmed contact with etcd (Unix ms). */
  private readonly contactPath: string;
  private readonly contactLimitMs: number | undefined;
  private readonly secrets: SecretSource | undefined;
  /** The machine's image store (drivers with the `images` capability only: runc). */
  readonly images: ImageStore | undefined;
  private readonly supervisors = new Map<string, Supervisor>();
  private readonly failedEarly = new Map<string, UnitState>();
  private readonly listeners = new Set<StateListener>();
  private readonly queues = new Map<string, Promise<void>>();
  private readonly rotation: NodeJS.Timeout;
  private closed = false;

  private constructor(opts: UnitManagerOptions, driver: RuntimeDriver) {
    this.machineId = opts.machineId;
    this.driver = driver;
    this.logs = new LogStore({
      dir: driver.layout.logsDir,
      ...(opts.logMaxBytes !== undefined ? { maxBytes: opts.logMaxBytes } : {}),
    });
    this.timings = { ...SUPERVISOR_DEFAULTS, ...opts.timings };
    this.contactPath = join(driver.layout.root, 'contact');
    this.contactLimitMs = opts.contactLimitMs;
    this.secrets = opts.secrets;
    this.images = driver.capabilities.images
      ? new ImageStore({
          dir: join(driver.layout.root, 'images'),
          registry: opts.images?.registry ?? REGISTRY_DEFAULTS,
          maxBytes: opts.images?.maxBytes ?? 0,
          ...(driver.userns !== undefined ? { idMap: driver.userns } : {}),
        })
      : undefined;
    this.rotation = setInterval(() => void this.rotateLogs(), opts.logCheckMs ?? 1000);
    this.rotation.unref();
  }

  /** A manager for `machineId`, with the driver chosen (or given) by `opts.driver`. */
  static async create(opts: UnitManagerOptions): Promise<UnitManager> {
    const driver =
      typeof opts.driver === 'object'
        ? opts.driver
        : await createDriver({
            stateDir: opts.stateDir,
            machineId: opts.machineId,
            ...(opts.driver !== undefined ? { driver: opts.driver } : {}),
            ...(opts.runc !== undefined ? { runc: opts.runc } : {}),
            ...(opts.runcRoot !== undefined ? { root: opts.runcRoot } : {}),
            ...(opts.usernsRemap !== undefined ? { usernsRemap: opts.usernsRemap } : {}),
            ...(opts.onUserns !== undefined ? { onUserns: opts.onUserns } : {}),
          });
    // Before anything is written or adopted: an older agent left 0644 files under 0755.
    await tightenMachineFiles(driver.layout);
    return new UnitManager(opts, driver);
  }

  /** Calls `listener` with every state change of every unit; returns the unsubscribe. */
  onState(listener: StateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The current state of every unit this manager supervises. */
  list(): UnitState[] {
    return [...[...this.supervisors.values()].map((s) => s.state), ...this.failedEarly.values()];
  }

  /** The current state of `name`, if this manager supervises it. */
  get(name: string): UnitState | undefined {
    return this.supervisors.get(name)?.state ?? this.failedEarly.get(name);
  }

  /**
   * Runs `def` (level-triggered: call it on every reconcile). Already running with the same
   * hash: nothing happens, whatever its state (a failed unit stays failed until stopped or
   * changed). Running with another hash: the old one is stopped first. Resolves once the
   * start is under way (not when the unit is active: watch {@link onState}).
   */
  start(def: UnitDefinition, hash: string = def.hash): Promise<void> {
    const name = def.name.name;
    return this.enqueue(name, async () => {
      const current = this.supervisors.get(name);
      if (current?.unit.hash === hash) return;
      if (current !== undefined) {
        await current.stop();
        this.supervisors.delete(name);
      }
      this.failedEarly.delete(name);
      let supervisor: Supervisor;
      try {
        const unit = {
          name,
          hash,
          service: def.service,
          stopOnDisconnect: def.fleet.stopOnDisconnectMs > 0,
        };
        supervisor = new Supervisor(
          def.container !== undefined ? { ...unit, container: def.container } : unit,
          this.deps(),
        );
      } catch (err) {
        this.failEarly(name, hash, describeError(err));
        return;
      }
      this.supervisors.set(name, supervisor);
      supervisor.start();
    });
  }

  /**
   * Stops `name` (ExecStop, KillSignal, SIGKILL after TimeoutStopSec, ExecStopPost) and
   * forgets it; its logs remain. Resolves when it is stopped. Unknown names are a no-op.
   */
  stop(name: string): Promise<void> {
    return this.enqueue(name, async () => {
      this.failedEarly.delete(name);
      const supervisor = this.supervisors.get(name);
      if (supervisor === undefined) return;
      await supervisor.stop();
      this.supervisors.delete(name);
    });
  }

  /**
   * Takes over the units a previous agent with this machine id left in the state directory,
   * without restarting them (pids unchanged). Call once, before the first {@link start}: the
   * reconcile loop then starts the placed ones (same hash: kept as they are) and stops the
   * rest. State directories without a readable meta.json and no live process are removed.
   */
  async adopt(): Promise<AdoptedUnit[]> {
    const adopted: AdoptedUnit[] = [];
    for (const found of await this.driver.list()) {
      if (this.supervisors.has(found.unit)) continue;
      const meta = await readMeta(found.dir);
      if (meta === undefined || meta.unit !== found.unit) {
        if (!found.running) {
          await this.driver
            .remove(this.driver.context(found.unit, emptyService()))
            .catch(() => undefined);
        }
        continue;
      }
      const unit = { name: meta.unit, hash: meta.hash, service: meta.service };
      const supervisor = new Supervisor(
        meta.container !== undefined ? { ...unit, container: meta.container } : unit,
        this.deps(),
      );
      this.supervisors.set(meta.unit, supervisor);
      supervisor.adopt(found, meta);
      adopted.push({
        name: meta.unit,
        hash: meta.hash,
        containerId: supervisor.ctx.containerId,
        pid: found.running ? (found.main?.pid ?? 0) : 0,
        running: found.running,
      });
    }
    if (this.driver.capabilities.removeOrphans) {
      const known = new Set<string>();
      for (const supervisor of this.supervisors.values()) known.add(supervisor.ctx.containerId);
      await this.driver.removeOrphans(known);
    }
    return adopted;
  }

  /**
   * Lets go of every unit without stopping any (agent shutdown, or tests simulating an agent
   * crash); a new manager with the same machine id and state directory adopts them.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.rotation);
    await Promise.all([...this.supervisors.values()].map((s) => s.detach()));
    this.supervisors.clear();
  }

  private deps(): ConstructorParameters<typeof Supervisor>[1] {
    return {
      driver: this.driver,
      logs: this.logs,
      machineId: this.machineId,
      timings: this.timings,
      onState: (state) => this.emit(state),
      ...(this.images !== undefined ? { images: this.images } : {}),
      ...(this.secrets !== undefined ? { secrets: this.secrets } : {}),
      ...(this.contactLimitMs === undefined
        ? {}
        : { watchdog: { contactPath: this.contactPath, limitMs: this.contactLimitMs } }),
    };
  }

  /**
   * Records that etcd confirmed the agent's lease at `atMs` (Unix ms), for the shims of
   * `StopOnDisconnect=` units: written whole (a temporary file renamed), so a shim never
   * reads half of it. Never throws.
   */
  async recordContact(atMs: number): Promise<void> {
    const tmp = `${this.contactPath}.tmp`;
    try {
      await writeFile(tmp, `${Math.round(atMs)}\n`);
      await rename(tmp, this.contactPath);
    } catch {
      // The next renewal writes it again; until then the shims see an older contact.
    }
  }

  private emit(state: UnitState): void {
    for (const listener of this.listeners) {
      try {
        listener(state);
      } catch {
        // One listener's bug must not starve the others.
      }
    }
  }

  private failEarly(name: string, hash: string, message: string): void {
    const state: UnitState = {
      ...initialState(name, this.machineId, hash, '', Date.now()),
      loadState: 'error',
      activeState: 'failed',
      subState: 'failed',
      message,
    };
    this.failedEarly.set(name, state);
    this.emit(state);
  }

  /** Runs operations on one unit one after another (a stop finishes before a new start). */
  private enqueue(name: string, op: () => Promise<void>): Promise<void> {
    const previous = this.queues.get(name) ?? Promise.resolve();
    const next = previous.then(op).catch((err: unknown) => {
      this.failEarly(name, this.get(name)?.hash ?? '', `agent error: ${describeError(err)}`);
    });
    this.queues.set(name, next);
    void next.then(() => {
      if (this.queues.get(name) === next) this.queues.delete(name);
    });
    return next;
  }

  private async rotateLogs(): Promise<void> {
    for (const name of this.supervisors.keys()) {
      await this.logs.rotateIfNeeded(name).catch(() => undefined);
    }
  }
}

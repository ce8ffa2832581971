/**
 * The one interface both runtime drivers (runc containers, plain processes) implement, so the
 * supervisor holds systemd's [Service] semantics once and the drivers only know how to run a
 * command in their kind of sandbox.
 *
 * Every main process runs under a shim (see shim.ts): a tiny detached `/bin/sh` that runs the
 * command in the foreground and writes its exit status into the unit's state directory. The
 * shim, not the agent, is the parent, so a unit outlives a SIGKILLed agent, keeps its pid, and
 * a new agent learns how the unit ended even when that happened while no agent was running.
 */
import type { ServiceOptions } from '../../unit/model.js';
import type { MachineLayout } from './layout.js';
import type { UnitUser } from './users.js';
import type { IdMap } from './userns.js';

/** The drivers there are; the machine record advertises which one an agent runs. */
export type DriverName = 'runc' | 'process';

/**
 * What a driver can do beyond what every driver does. Callers branch on these, never on the
 * driver's class, so a new driver says what it supports in one place.
 */
export interface DriverCapabilities {
  /**
   * Image units: the driver runs a unit on an image's overlay root (as `RootDirectory=`) and
   * unmounts that root when it removes the unit. A machine gets an image store only then.
   */
  readonly images: boolean;
  /**
   * The driver can leave containers behind that no unit directory names (a wiped state
   * directory, hooks cut short by an agent crash); {@link RuntimeDriver.removeOrphans}
   * finds and deletes them.
   */
  readonly removeOrphans: boolean;
}

/** One unit as a driver sees it: where its files are and what sandbox it asked for. */
export interface UnitContext {
  readonly unit: string;
  /** `flotilla-<machine>-<unit>`; for the process driver it only names the unit's files. */
  readonly containerId: string;
  /** The unit's state directory (bundle, pid and exit files, meta.json). */
  readonly dir: string;
  /** Where stdout and stderr of every command of the unit go (appended). */
  readonly logPath: string;
  /** The unit's cgroup relative to each controller's mount point (runc only). */
  readonly cgroupPath: string;
  readonly service: ServiceOptions;
  /** The host directory of the unit's secrets (`Secret=`), see secret-files.ts. */
  readonly secretsDir: string;
  /**
   * A `StopOnDisconnect=` unit's backstop (shim.ts): the shim kills the main process once the
   * agent's last contact with etcd is older than `limitMs`. null: none; absent: as last set
   * (an adopted unit's).
   */
  readonly watchdog?: { readonly contactPath: string; readonly limitMs: number } | null;
}

/** One command of a unit, resolved: nothing left for a driver to look up or expand. */
export interface CommandSpec {
  /** The program, absolute, as the unit sees it. */
  readonly path: string;
  /** Arguments after argv[0], `$VAR` references already expanded. */
  readonly args: readonly string[];
  /** The complete environment. */
  readonly env: Readonly<Record<string, string>>;
  /** Absolute, as the unit sees it. */
  readonly cwd: string;
  /** Who runs it (root for `+` commands and units without User=). */
  readonly user: UnitUser;
  /** A `+` command: in a container, Docker's default capabilities and no NoNewPrivileges. */
  readonly privileged?: boolean;
}

/** A started main process. Both pids are only trusted with their start times (pid reuse). */
export interface MainProcess {
  readonly shimPid: number;
  readonly shimStart: number;
  /** The program's pid on the host; 0 when it never started (runc create failed). */
  readonly pid: number;
  /** Start time of `pid` (/proc ticks); -1 when it was already gone when we looked. */
  readonly pidStart: number;
}

/** How a command ended. */
export interface ExitResult {
  /**
   * The exit status as a shell reports it: 0-255, 128+n when signal n ended the process.
   * -1 when it is unknown (the shim itself was killed, or the host rebooted).
   */
  readonly status: number;
  /** The signal that ended it (e.g. `SIGKILL`) when the status says so; '' otherwise. */
  readonly signal: string;
}

/** Options of {@link RuntimeDriver.exec}. */
export interface ExecOptions {
  /** Kill the command (SIGKILL) and report it as killed after this long. */
  readonly timeoutMs: number;
  /** When set, the command runs beside this main process (in its container for runc). */
  readonly main?: MainProcess;
  /** Aborting kills the command as a timeout would (a stop request during a hook). */
  readonly signal?: AbortSignal;
  /**
   * Where the command's stdout and stderr go (appended) instead of the unit's log, and a tag
   * that keeps the driver's own files for it apart from other commands running at the same
   * time (a health check beside an ExecStop=).
   */
  readonly output?: { readonly path: string; readonly tag: string };
}

/** `main`: only the main process; `all`: every process of the unit. */
export type SignalScope = 'main' | 'all';

/** A unit found in this machine's state directory (for adoption after an agent restart). */
export interface FoundUnit {
  readonly unit: string;
  readonly dir: string;
  /** Set when a shim was started for the unit and its pid is still known. */
  readonly main?: MainProcess;
  /**
   * True while its shim runs, or its program does although the shim was killed (then
   * {@link RuntimeDriver.wait} follows the program, but cannot learn its exit status).
   */
  readonly running: boolean;
  /** How its last main process ended, when the shim recorded that. */
  readonly exit?: ExitResult;
}

/** What a runtime must do for the supervisor. All methods are safe to call concurrently. */
export interface RuntimeDriver {
  readonly name: DriverName;
  readonly layout: MachineLayout;
  readonly capabilities: DriverCapabilities;
  /** The user namespace of this machine's containers (userns.ts); undefined: the host's. */
  readonly userns: IdMap | undefined;

  /** The context of `unit` on this machine (pure: no I/O). */
  context(unit: string, service: ServiceOptions): UnitContext;

  /**
   * The host path at which the unit's processes see `path` (absolute), or undefined when the
   * unit sees nothing there. Lets the supervisor check programs and WorkingDirectory= before
   * starting, so a bad unit fails with a reason instead of an opaque exit status.
   */
  hostPath(ctx: UnitContext, path: string): string | undefined;

  /** The root whose etc/passwd and etc/group User= resolves against. */
  userRoot(ctx: UnitContext): string;

  /**
   * The user namespace a unit with `service` runs in (userns.ts): container ids 0.. are host
   * ids `map.uid`/`map.gid`.. Undefined: the host's (the process driver, `--userns-remap=off`,
   * or a unit granted host paths). Image layers and volumes are prepared for this mapping.
   */
  idMapping(service: ServiceOptions): IdMap | undefined;

  /**
   * Where the unit's processes see the files {@link writeSecrets} wrote: `/run/secrets` in a
   * container, the host directory itself for plain processes (`$CREDENTIALS_DIRECTORY`).
   */
  secretsPath(ctx: UnitContext): string;

  /**
   * Writes the unit's secrets, one file per name (0400, owned by `owner`), into a fresh
   * tmpfs at {@link UnitContext.secretsDir}, replacing what was there. {@link remove}
   * unmounts and deletes it.
   */
  writeSecrets(
    ctx: UnitContext,
    values: ReadonlyMap<string, Buffer>,
    owner: { readonly uid: number; readonly gid: number },
  ): Promise<void>;

  /** Creates the unit's state directory (and the runc bundle's rootfs). Idempotent. */
  prepare(ctx: UnitContext): Promise<void>;

  /** Runs one command to completion (ExecStartPre, ExecStartPost, ExecStop, ExecStopPost). */
  exec(ctx: UnitContext, cmd: CommandSpec, opts: ExecOptions): Promise<ExitResult>;

  /**
   * Starts `cmd` detached under a shim and resolves once its pid is known (or it ended
   * first, then `pid` is 0 or already dead and {@link wait} reports the exit).
   */
  start(ctx: UnitContext, cmd: CommandSpec, timeoutMs: number): Promise<MainProcess>;

  /**
   * True once `main` runs the unit's program (no longer the shim's or runc's own code);
   * false while it has not, and once it is gone (then {@link wait} says how it ended).
   */
  isExecuted(main: MainProcess): Promise<boolean>;

  /** Resolves with how `main` ended; rejects with an AbortError when `signal` aborts. */
  wait(ctx: UnitContext, main: MainProcess, signal: AbortSignal): Promise<ExitResult>;

  /**
   * `main`'s pid as the unit's own commands see it ($MAINPID of ExecStartPost=/ExecStop=):
   * 1 inside a container's pid namespace, the host pid for plain processes.
   */
  unitPid(main: MainProcess): number;

  /** True while the shim of `main` runs. */
  isRunning(main: MainProcess): Promise<boolean>;

  /** Sends `signal`; a process that is already gone is not an error. */
  kill(
    ctx: UnitContext,
    main: MainProcess,
    signal: NodeJS.Signals,
    scope: SignalScope,
  ): Promise<void>;

  /** Every unit with a state directory on this machine, and whether its shim still runs. */
  list(): Promise<FoundUnit[]>;

  /** Deletes the unit's container remnants and state directory (never its logs). */
  remove(ctx: UnitContext): Promise<void>;

  /**
   * Deletes this machine's containers whose ids are not in `known` (and every hook
   * container); returns their ids. Without {@link DriverCapabilities.removeOrphans} there
   * are none: it resolves with [].
   */
  removeOrphans(known: ReadonlySet<string>): Promise<string[]>;
}

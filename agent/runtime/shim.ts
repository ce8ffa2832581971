/**
 * The shim every main process runs under, and the driver logic built on it.
 *
 * The agent spawns, detached (own session, stdio appended to the unit's log), a tiny
 * `/bin/sh -c SCRIPT <unit-dir> <command...>` that records its own pid, runs the command in
 * the foreground and writes `$?` to `<unit-dir>/exit`. The command (runc run, or a small
 * `exec` wrapper for plain processes) writes the program's pid to `<unit-dir>/main.pid`.
 * Nothing here depends on the agent staying alive: a new agent reads the same three files.
 * The shim traps the usual termination signals so a signal aimed at the unit's process group
 * still lets it record the status (traps set to a command are reset in its children).
 */
import { spawn } from 'node:child_process';
import { watch, type FSWatcher } from 'node:fs';
import { open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ServiceOptions } from '../../unit/model.js';
import type {
  CommandSpec,
  DriverCapabilities,
  DriverName,
  ExecOptions,
  ExitResult,
  FoundUnit,
  MainProcess,
  RuntimeDriver,
  SignalScope,
  UnitContext,
} from './driver.js';
import { RuntimeError } from './errors.js';
import { MachineLayout, UNIT_FILES } from './layout.js';
import { writeSecretFiles, type SecretOwner } from './secret-files.js';
import { PRIVATE_FILE_MODE } from './private-files.js';
import { isAlive, isInCgroup, procCmdline, procStat } from './proc.js';
import { decodeShellStatus } from './spawn.js';
import type { IdMap } from './userns.js';

/** First word of the shim script: how a shim is recognised in /proc after an agent restart. */
export const SHIM_MARKER = ': flotilla-shim';

/**
 * The at-most-once backstop of a `StopOnDisconnect=` unit ({@link UnitContext.watchdog}): while
 * the shim lives, every 0.5 s a loop reads the agent's last confirmed contact with etcd (Unix
 * ms in the contact file) and SIGKILLs the main process once it is older than the limit. The
 * agent stops such a unit itself when cut off; this also stops it when the agent cannot (frozen
 * by SIGSTOP, hung, killed), before its lease can expire and the unit start elsewhere.
 */
const WATCHDOG = [
  'if [ -r "$0/watchdog" ] && read c l < "$0/watchdog"; then (',
  '  PATH=/usr/sbin:/usr/bin:/sbin:/bin',
  '  while sleep 0.5 && kill -0 $$ 2>/dev/null; do',
  '    read t < "$c" 2>/dev/null || continue',
  '    n=$(date +%s%3N)',
  '    if [ $((n - t)) -gt "$l" ]; then',
  '      echo "flotilla-shim: no contact with etcd for over $l ms: killing the unit (StopOnDisconnect=)"',
  '      kill -KILL "$(cat "$0/main.pid")" 2>/dev/null',
  '      break',
  '    fi',
  '  done',
  ') & fi',
].join('\n');

const SHIM_SCRIPT = [
  SHIM_MARKER,
  'echo $$ > "$0/shim.pid"',
  'trap : HUP INT QUIT TERM USR1 USR2 ALRM PIPE',
  WATCHDOG,
  '"$@"',
  's=$?',
  'echo "$s" > "$0/exit"',
].join('\n');

/** How the shim must start the unit's command. */
export interface ShimInvocation {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
}

/** A whole decimal number followed by at most a newline; '' while the writer is mid-write. */
async function readNumber(path: string): Promise<number | undefined> {
  try {
    const text = await readFile(path, 'utf8');
    return /^\d+\n?$/.test(text) ? Number(text.trim()) : undefined;
  } catch {
    return undefined;
  }
}

/** The exit status the shim recorded in `dir`, if it did. */
export async function readExit(dir: string): Promise<ExitResult | undefined> {
  const status = await readNumber(join(dir, UNIT_FILES.exit));
  return status === undefined ? undefined : decodeShellStatus(status);
}

/** True when `pid` is the shim of the unit in `dir` (and not a recycled pid). */
async function isShimOf(pid: number, dir: string): Promise<boolean> {
  const argv = await procCmdline(pid);
  return argv?.[2]?.startsWith(SHIM_MARKER) === true && argv[3] === dir;
}

/** Resolves after `ms`, on a change in `watcher`'s directory, or on abort. */
function pause(ms: number, signal: AbortSignal, watcher: FSWatcher | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      watcher?.off('change', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    watcher?.on('change', done);
    signal.addEventListener('abort', done);
  });
}

function watchDir(dir: string): FSWatcher | undefined {
  try {
    return watch(dir).on('error', () => undefined);
  } catch {
    return undefined;
  }
}

/** The shared half of both drivers: shim lifecycle, exit status, discovery. */
export abstract class ShimDriver implements RuntimeDriver {
  abstract readonly name: DriverName;
  abstract readonly capabilities: DriverCapabilities;
  readonly layout: MachineLayout;

  constructor(stateDir: string, machineId: string) {
    this.layout = new MachineLayout(stateDir, machineId);
  }

  context(unit: string, service: ServiceOptions): UnitContext {
    return {
      unit,
      containerId: this.layout.containerId(unit),
      dir: this.layout.unitDir(unit),
      logPath: this.layout.logPath(unit),
      cgroupPath: this.layout.cgroupPath(unit),
      service,
      secretsDir: this.layout.secretsDir(unit),
    };
  }

  writeSecrets(
    ctx: UnitContext,
    values: ReadonlyMap<string, Buffer>,
    owner: SecretOwner,
  ): Promise<void> {
    return writeSecretFiles(ctx.secretsDir, values, owner);
  }

  abstract secretsPath(ctx: UnitContext): string;

  readonly userns: IdMap | undefined = undefined;

  /** The host's user namespace, unless a driver runs units in one of their own. */
  idMapping(_service: ServiceOptions): IdMap | undefined {
    return undefined;
  }

  abstract hostPath(ctx: UnitContext, path: string): string | undefined;
  abstract userRoot(ctx: UnitContext): string;
  abstract unitPid(main: MainProcess): number;
  abstract prepare(ctx: UnitContext): Promise<void>;
  abstract exec(ctx: UnitContext, cmd: CommandSpec, opts: ExecOptions): Promise<ExitResult>;
  abstract kill(
    ctx: UnitContext,
    main: MainProcess,
    signal: NodeJS.Signals,
    scope: SignalScope,
  ): Promise<void>;
  abstract remove(ctx: UnitContext): Promise<void>;
  abstract removeOrphans(known: ReadonlySet<string>): Promise<string[]>;

  /** How the shim runs `cmd`: the command line, its environment and directory. */
  protected abstract invocation(ctx: UnitContext, cmd: CommandSpec): Promise<ShimInvocation>;

  /** True for the argv of a process that has not exec'd the unit's program yet. */
  protected abstract isPreExec(argv: readonly string[]): boolean;

  /** Called when the start times out, before the shim's group is killed. */
  protected abstract abortStart(ctx: UnitContext): Promise<void>;

  async start(ctx: UnitContext, cmd: CommandSpec, timeoutMs: number): Promise<MainProcess> {
    for (const file of ['shim.pid', UNIT_FILES.pid, UNIT_FILES.exit]) {
      await rm(join(ctx.dir, file), { force: true });
    }
    if (ctx.watchdog === null) await rm(join(ctx.dir, 'watchdog'), { force: true });
    else if (ctx.watchdog !== undefined) {
      const { contactPath, limitMs } = ctx.watchdog;
      if (/\s/.test(contactPath)) throw new RuntimeError('runtime-failed', 'state path has spaces');
      await writeFile(join(ctx.dir, 'watchdog'), `${contactPath} ${Math.round(limitMs)}\n`);
    }
    const how = await this.invocation(ctx, cmd);
    const log = await open(ctx.logPath, 'a', PRIVATE_FILE_MODE);
    let shimPid: number;
    try {
      shimPid = await new Promise<number>((resolve, reject) => {
        const child = spawn('/bin/sh', ['-c', SHIM_SCRIPT, ctx.dir, ...how.argv], {
          cwd: how.cwd,
          env: { ...how.env },
          detached: true,
          stdio: ['ignore', log.fd, log.fd],
        });
        child.once('error', (err) =>
          reject(new RuntimeError('runtime-failed', `cannot start the shim: ${err.message}`)),
        );
        child.once('spawn', () => {
          child.unref();
          if (child.pid === undefined) reject(new RuntimeError('runtime-failed', 'no shim pid'));
          else resolve(child.pid);
        });
      });
    } finally {
      await log.close();
    }
    const shimStart = (await procStat(shimPid))?.startTime ?? -1;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const pid = await readNumber(join(ctx.dir, UNIT_FILES.pid));
      if (pid !== undefined) {
        return { shimPid, shimStart, pid, pidStart: (await procStat(pid))?.startTime ?? -1 };
      }
      if ((await readExit(ctx.dir)) !== undefined) {
        // The pid file may have appeared just before the exit file: a quick program.
        const late = await readNumber(join(ctx.dir, UNIT_FILES.pid));
        return { shimPid, shimStart, pid: late ?? 0, pidStart: -1 };
      }
      if (Date.now() > deadline) {
        await this.abortStart(ctx).catch(() => undefined);
        try {
          process.kill(-shimPid, 'SIGKILL');
        } catch {
          // already gone
        }
        throw new RuntimeError(
          'start-timeout',
          `the main process did not start within ${timeoutMs} ms`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async isExecuted(main: MainProcess): Promise<boolean> {
    // A zombie's argv is empty: only a live process can tell whether it exec'd.
    if (!(await isAlive(main.pid, main.pidStart))) return false;
    const argv = await procCmdline(main.pid);
    return argv !== undefined && argv.length > 0 && !this.isPreExec(argv);
  }

  isRunning(main: MainProcess): Promise<boolean> {
    return isAlive(main.shimPid, main.shimStart);
  }

  async wait(ctx: UnitContext, main: MainProcess, signal: AbortSignal): Promise<ExitResult> {
    const watcher = watchDir(ctx.dir);
    try {
      let shimGone = false;
      for (;;) {
        signal.throwIfAborted();
        const exit = await readExit(ctx.dir);
        if (exit !== undefined) return exit;
        if (!shimGone && !(await this.isRunning(main))) {
          // The shim may have written the file between the two checks: read it once more.
          const late = await readExit(ctx.dir);
          if (late !== undefined) return late;
          shimGone = true;
        }
        // A shim killed on its own cannot report; the program may still run: wait for it.
        if (shimGone && (main.pid === 0 || !(await isAlive(main.pid, main.pidStart)))) {
          return { status: -1, signal: '' };
        }
        await pause(shimGone ? 250 : 1000, signal, watcher);
      }
    } finally {
      watcher?.close();
    }
  }

  async list(): Promise<FoundUnit[]> {
    let names: string[];
    try {
      names = await readdir(this.layout.unitsDir);
    } catch {
      return [];
    }
    const found: FoundUnit[] = [];
    for (const unit of names.sort()) {
      const dir = join(this.layout.unitsDir, unit);
      const shimPid = await readNumber(join(dir, 'shim.pid'));
      const exit = await readExit(dir);
      const base = { unit, dir, ...(exit !== undefined ? { exit } : {}) };
      if (shimPid === undefined) {
        found.push({ ...base, running: false });
        continue;
      }
      const stat = await procStat(shimPid);
      const isShim = stat !== undefined && (await isShimOf(shimPid, dir));
      const pid = (await readNumber(join(dir, UNIT_FILES.pid))) ?? 0;
      const mainStat = pid > 0 ? await procStat(pid) : undefined;
      const main: MainProcess = {
        shimPid,
        shimStart: isShim ? stat.startTime : -1,
        pid,
        pidStart: mainStat?.startTime ?? -1,
      };
      // A shim killed on its own leaves its program running: that still counts as running,
      // if the pid is provably the unit's (its group, or its cgroup), not a recycled one.
      const mainRuns =
        mainStat !== undefined &&
        mainStat.state !== 'Z' &&
        (mainStat.pgid === shimPid || (await isInCgroup(pid, this.layout.cgroupPath(unit))));
      const shimRuns = isShim && (await isAlive(shimPid, stat.startTime));
      found.push({ ...base, main, running: shimRuns || mainRuns });
    }
    return found;
  }
}

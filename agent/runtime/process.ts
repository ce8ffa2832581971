/**
 * The process driver: a unit's commands run as plain child processes of the host, with the
 * same shim, exit-status and adoption semantics as runc but no isolation and no cgroup
 * limits. For hosts without runc or without root. User= needs root (it switches with
 * setpriv(1)); without root only the agent's own user works.
 */
import { access, rm } from 'node:fs/promises';
import { mkdirPrivate } from './private-files.js';
import { checkReachable, removeSecretFiles, type SecretOwner } from './secret-files.js';
import { basename } from 'node:path';
import type {
  CommandSpec,
  DriverCapabilities,
  DriverName,
  ExecOptions,
  ExitResult,
  MainProcess,
  SignalScope,
  UnitContext,
} from './driver.js';
import { RuntimeError } from './errors.js';
import { groupMembers, isAlive, procStat, signalPid } from './proc.js';
import { ShimDriver, type ShimInvocation } from './shim.js';
import { runToCompletion } from './spawn.js';
import type { UnitUser } from './users.js';

/** First word of the wrapper that records the main pid, then execs the program in place. */
const EXEC_MARKER = ': flotilla-exec';
const EXEC_SCRIPT = [EXEC_MARKER, 'echo $$ > "$0/main.pid"', 'exec "$@"'].join('\n');

const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv'];

async function findSetpriv(): Promise<string | undefined> {
  for (const path of SETPRIV_PATHS) {
    try {
      await access(path);
      return path;
    } catch {
      // next
    }
  }
  return undefined;
}

/** Runs units as plain processes. Construct one per machine id. */
export class ProcessDriver extends ShimDriver {
  readonly name: DriverName = 'process';
  readonly capabilities: DriverCapabilities = { images: false, removeOrphans: false };
  private setpriv: Promise<string | undefined> | undefined;

  hostPath(_ctx: UnitContext, path: string): string {
    return path;
  }

  unitPid(main: MainProcess): number {
    return main.pid;
  }

  userRoot(): string {
    return '/';
  }

  async prepare(ctx: UnitContext): Promise<void> {
    await mkdirPrivate(ctx.dir);
    await mkdirPrivate(this.layout.logsDir);
  }

  async exec(ctx: UnitContext, cmd: CommandSpec, opts: ExecOptions): Promise<ExitResult> {
    const argv = [...(await this.switchUser(cmd.user)), cmd.path, ...cmd.args];
    return runToCompletion(argv, {
      env: cmd.env,
      cwd: cmd.cwd,
      logPath: opts.output?.path ?? ctx.logPath,
      timeoutMs: opts.timeoutMs,
      ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
    });
  }

  async kill(
    _ctx: UnitContext,
    main: MainProcess,
    signal: NodeJS.Signals,
    scope: SignalScope,
  ): Promise<void> {
    if (scope === 'main') {
      if (await isAlive(main.pid, main.pidStart)) signalPid(main.pid, signal);
      return;
    }
    // The shim made itself a session and group leader, so the unit's processes are its group
    // (minus any that made their own session: without cgroups nothing can find those).
    // The group is still the unit's while its leader is the shim or gone: the kernel never
    // gives out a pid that names a live process group, so a leader with another start time
    // got the dead shim's pid after the unit's group had emptied (an adopted unit that ended
    // long ago), and its group is a stranger's, maybe another unit's.
    const leader = await procStat(main.shimPid);
    if (leader !== undefined && leader.startTime !== main.shimStart) return;
    for (const pid of await groupMembers(main.shimPid)) {
      if (pid !== main.shimPid) signalPid(pid, signal);
    }
  }

  async remove(ctx: UnitContext): Promise<void> {
    await rm(ctx.dir, { recursive: true, force: true });
    await removeSecretFiles(ctx.secretsDir);
  }

  /** The unit reaches its secrets by their host path: its user must be able to. */
  override async writeSecrets(
    ctx: UnitContext,
    values: ReadonlyMap<string, Buffer>,
    owner: SecretOwner,
  ): Promise<void> {
    await super.writeSecrets(ctx, values, owner);
    try {
      await checkReachable(ctx.secretsDir, owner);
    } catch (err) {
      await removeSecretFiles(ctx.secretsDir);
      throw err;
    }
  }

  /** systemd's `$CREDENTIALS_DIRECTORY`: the host directory itself. */
  secretsPath(ctx: UnitContext): string {
    return ctx.secretsDir;
  }

  /** Plain processes leave no containers behind. */
  removeOrphans(): Promise<string[]> {
    return Promise.resolve([]);
  }

  protected async invocation(ctx: UnitContext, cmd: CommandSpec): Promise<ShimInvocation> {
    const prefix = await this.switchUser(cmd.user);
    return {
      argv: ['/bin/sh', '-c', EXEC_SCRIPT, ctx.dir, ...prefix, cmd.path, ...cmd.args],
      env: cmd.env,
      cwd: cmd.cwd,
    };
  }

  protected isPreExec(argv: readonly string[]): boolean {
    return argv[2]?.startsWith(EXEC_MARKER) === true || basename(argv[0] ?? '') === 'setpriv';
  }

  protected async abortStart(): Promise<void> {
    // Nothing outside the shim's process group to clean up.
  }

  /** The argv prefix that runs a program as `user` (empty when that is the agent's user). */
  private async switchUser(user: UnitUser): Promise<string[]> {
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    if (user.uid === uid && user.gid === gid && (uid !== 0 || user.groups.length === 0)) {
      return [];
    }
    if (uid !== 0) {
      throw new RuntimeError(
        'unsupported',
        `User=${user.name} needs the agent to run as root (it runs as uid ${uid})`,
      );
    }
    this.setpriv ??= findSetpriv();
    const setpriv = await this.setpriv;
    if (setpriv === undefined) {
      throw new RuntimeError('unsupported', `User=${user.name} needs setpriv(1) on this host`);
    }
    const groups = user.groups.length > 0 ? `--groups=${user.groups.join(',')}` : '--clear-groups';
    return [setpriv, `--reuid=${user.uid}`, `--regid=${user.gid}`, groups, '--'];
  }
}

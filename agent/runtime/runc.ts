/**
 * The runc driver: every unit is an OCI bundle under its state directory and its main
 * process a `runc run` (foreground) under the shim, so runc itself deletes the container and
 * its cgroup when the process ends. Hooks run inside the main container (`runc exec`) while it
 * runs, otherwise in a short-lived container `<id>+hook` with the same rootfs and limits.
 * Mounts are made by runc inside the container's mount namespace: nothing is mounted on the
 * host, so removing a unit is deleting its directory.
 */
import {
  chmod,
  lstat,
  mkdir,
  readFile,
  readlink,
  rm,
  rmdir,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { constants } from 'node:os';
import { dirname, join, relative } from 'node:path';
import type { ServiceOptions } from '../../unit/model.js';
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
import { HOST_DIRS, ociConfig, ociProcess, SECRETS_MOUNT, type RootfsPlan } from './oci-spec.js';
import { ID_PREFIX } from './layout.js';
import { isDroppedByInit } from './pid-one.js';
import { unmountUnder } from './mounts.js';
import { etcBinds, etcHostPath, writeUnitEtc } from './host-etc.js';
import { mkdirPrivate, PRIVATE_FILE_MODE } from './private-files.js';
import { isAlive, isSignalName, signalPid } from './proc.js';
import { ShimDriver, type ShimInvocation } from './shim.js';
import { runCapture, runToCompletion, toolMessage } from './spawn.js';
import { removeSecretFiles, writeSecretFiles, type SecretOwner } from './secret-files.js';
import { checkMapped, hostId, hostUsernsReason, type IdMap } from './userns.js';
import { chownTree, openToMappedRoot, reachableByOthers } from './userns-files.js';

/** Options of {@link RuncDriver}. */
export interface RuncDriverOptions {
  /** The runc binary; default `runc` from PATH. */
  readonly runc?: string;
  /** runc's state root (`runc --root`); default runc's own (/run/runc). */
  readonly root?: string;
  /**
   * The user namespace of containers (userns.ts, resolved from `--userns-remap`); absent:
   * none, uid 0 in a container is uid 0 on the host.
   */
  readonly userns?: IdMap;
}

/** Cgroup hierarchies whose directories the driver tidies when a unit goes (and its machine's last). */
export const CGROUP_CONTROLLERS = [
  'memory',
  'cpu',
  'cpuacct',
  'cpuset',
  'devices',
  'freezer',
  'blkio',
  'pids',
  'systemd',
  // Not a controller: the cgroup v2 tree of a hybrid host, where runc also puts every
  // container and never removes its directory (937 were left on this machine).
  'unified',
];

const HOOK_SUFFIX = '+hook';

/** Records which signal a SIGKILL stood in for (see pid-one.ts). */
const KILLED_BY = 'killed-by';

/** Runs units as runc containers. Construct one per machine id; needs root. */
export class RuncDriver extends ShimDriver {
  readonly name: DriverName = 'runc';
  readonly capabilities: DriverCapabilities = { images: true, removeOrphans: true };
  private readonly runc: string;
  private readonly globalArgs: string[];
  override readonly userns: IdMap | undefined;
  /** Checked once: the state directory and its parents are traversable by the mapped root. */
  private stateDirReachable: Promise<void> | undefined;

  constructor(stateDir: string, machineId: string, opts: RuncDriverOptions = {}) {
    super(stateDir, machineId);
    this.runc = opts.runc ?? 'runc';
    this.globalArgs = opts.root !== undefined ? ['--root', opts.root] : [];
    this.userns = opts.userns;
  }

  /** Where image units' named volumes live (as the supervisor makes them). */
  get volumesDir(): string {
    return join(this.layout.root, 'volumes');
  }

  /** The unit's user namespace: the agent's, unless the unit needs the host's (userns.ts). */
  override idMapping(service: ServiceOptions): IdMap | undefined {
    if (this.userns === undefined) return undefined;
    return hostUsernsReason(service, this.volumesDir) === undefined ? this.userns : undefined;
  }

  /** As the base, owned by the unit's user as the host sees it when the unit is remapped. */
  override writeSecrets(
    ctx: UnitContext,
    values: ReadonlyMap<string, Buffer>,
    owner: SecretOwner,
  ): Promise<void> {
    const map = this.idMapping(ctx.service);
    const host =
      map === undefined
        ? owner
        : { uid: hostId(owner.uid, map.uid, map.size), gid: hostId(owner.gid, map.gid, map.size) };
    return writeSecretFiles(ctx.secretsDir, values, host);
  }

  hostPath(ctx: UnitContext, path: string): string | undefined {
    if (ctx.service.rootDirectory !== '') return join(ctx.service.rootDirectory, path);
    const inside = (dir: string): boolean => path === dir || path.startsWith(`${dir}/`);
    if (inside('/tmp')) return join(ctx.dir, 'tmp', relative('/tmp', path));
    if (inside('/etc')) return etcHostPath(ctx.dir, path);
    if ([...HOST_DIRS, '/proc', '/dev', '/sys'].some(inside)) return path;
    return path === '/' ? join(ctx.dir, 'rootfs') : undefined;
  }

  /** Bound read-only from the unit's secrets tmpfs (oci-spec.ts secretsMount). */
  secretsPath(): string {
    return SECRETS_MOUNT;
  }

  /** The main process is the init of the container's pid namespace. */
  unitPid(): number {
    return 1;
  }

  userRoot(ctx: UnitContext): string {
    return ctx.service.rootDirectory !== '' ? ctx.service.rootDirectory : '/';
  }

  async prepare(ctx: UnitContext): Promise<void> {
    await mkdirPrivate(this.layout.logsDir);
    await mkdirPrivate(ctx.dir);
    await mkdirPrivate(join(ctx.dir, 'hook'));
    await mkdir(join(ctx.dir, 'tmp'), { recursive: true });
    await chmod(join(ctx.dir, 'tmp'), 0o1777);
    if (ctx.service.rootDirectory !== '') return;
    const rootfs = join(ctx.dir, 'rootfs');
    await mkdir(join(rootfs, 'etc'), { recursive: true });
    await writeUnitEtc(ctx.dir, ctx.service);
    // Merged-/usr hosts have /bin -> usr/bin: the rootfs gets the same symlink, not a bind.
    for (const dir of HOST_DIRS) {
      const link = await readlink(dir).catch(() => undefined);
      const target = join(rootfs, dir);
      if (link === undefined || (await lstat(target).catch(() => undefined)) !== undefined)
        continue;
      await symlink(link, target);
    }
    const map = this.idMapping(ctx.service);
    // runc makes the mount points inside the rootfs as the container's root.
    if (map !== undefined) await chownTree(rootfs, map.uid, map.gid);
  }

  async exec(ctx: UnitContext, cmd: CommandSpec, opts: ExecOptions): Promise<ExitResult> {
    const common = { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' }, cwd: '/' };
    const tag = opts.output?.tag ?? '';
    const logPath = opts.output?.path ?? ctx.logPath;
    if (opts.main !== undefined && (await this.state(ctx.containerId)) === 'running') {
      const processFile = join(ctx.dir, `exec${tag}-process.json`);
      const pidFile = join(ctx.dir, `exec${tag}.pid`);
      await writeFile(processFile, JSON.stringify(ociProcess(cmd, ctx.service)), {
        mode: PRIVATE_FILE_MODE,
      });
      await rm(pidFile, { force: true });
      const argv = [this.runc, ...this.globalArgs, 'exec', '--process', processFile];
      return runToCompletion([...argv, '--pid-file', pidFile, ctx.containerId], {
        ...common,
        logPath,
        timeoutMs: opts.timeoutMs,
        ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
        onTimeout: async () => {
          const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
          if (pid > 0) signalPid(pid, 'SIGKILL');
        },
      });
    }
    // A command with its own output runs only inside the unit's container (a health check).
    if (opts.output !== undefined)
      throw new RuntimeError('runtime-failed', `container ${ctx.containerId} is not running`);
    const hookId = `${ctx.containerId}${HOOK_SUFFIX}`;
    const hookDir = join(ctx.dir, 'hook');
    await this.writeBundle(ctx, cmd, hookDir, `${ctx.cgroupPath}${HOOK_SUFFIX}`);
    await this.delete(hookId);
    try {
      return await runToCompletion(
        [this.runc, ...this.globalArgs, 'run', ...this.keyring(ctx), '--bundle', hookDir, hookId],
        {
          ...common,
          logPath,
          timeoutMs: opts.timeoutMs,
          onTimeout: () => this.tool(['kill', hookId, 'SIGKILL']).then(() => undefined),
        },
      );
    } finally {
      await this.delete(hookId);
    }
  }

  async kill(
    ctx: UnitContext,
    main: MainProcess,
    signal: NodeJS.Signals,
    scope: SignalScope,
  ): Promise<void> {
    const args = scope === 'all' ? ['kill', '--all'] : ['kill'];
    const res = await this.tool([...args, ctx.containerId, signal]);
    const alive = await isAlive(main.pid, main.pidStart);
    // No container (already gone, or runc state lost): fall back to the pid we know.
    if (res.code !== 0 && alive) signalPid(main.pid, signal);
    if (alive && (await isDroppedByInit(main.pid, signal))) {
      await writeFile(join(ctx.dir, KILLED_BY), signal);
      await this.tool(['kill', ctx.containerId, 'SIGKILL']);
      if (await isAlive(main.pid, main.pidStart)) signalPid(main.pid, 'SIGKILL');
    }
  }

  /** As the base, but a SIGKILL standing in for a dropped signal reports that signal. */
  override async wait(
    ctx: UnitContext,
    main: MainProcess,
    signal: AbortSignal,
  ): Promise<ExitResult> {
    const exit = await super.wait(ctx, main, signal);
    if (exit.signal !== 'SIGKILL') return exit;
    const meant = (await readFile(join(ctx.dir, KILLED_BY), 'utf8').catch(() => '')).trim();
    return isSignalName(meant) ? { status: 128 + constants.signals[meant], signal: meant } : exit;
  }

  async remove(ctx: UnitContext): Promise<void> {
    await this.delete(ctx.containerId);
    await this.delete(`${ctx.containerId}${HOOK_SUFFIX}`);
    // An image unit's overlay root is mounted in its directory: never delete through it.
    await unmountUnder(ctx.dir);
    await rm(ctx.dir, { recursive: true, force: true });
    await removeSecretFiles(ctx.secretsDir);
    await this.tidyCgroups(ctx);
  }

  /**
   * Deletes containers of this machine that have no unit directory (left behind when a
   * state directory was wiped, or hooks interrupted by an agent crash). Returns their ids.
   */
  async removeOrphans(known: ReadonlySet<string>): Promise<string[]> {
    // runc 1.1's list fails as a whole when a container is deleted while it lists (another
    // agent on this host, or this one's own stops): try again before giving up.
    let res = await this.tool(['list', '--format', 'json']);
    for (let i = 0; res.code !== 0 && i < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      res = await this.tool(['list', '--format', 'json']);
    }
    if (res.code !== 0) return [];
    const listed = (JSON.parse(res.stdout || 'null') ?? []) as { id: string }[];
    const prefix = this.layout.containerPrefix();
    const orphans = listed
      .map((c) => c.id)
      .filter((id) => id.startsWith(prefix) && (id.endsWith(HOOK_SUFFIX) || !known.has(id)));
    for (const id of orphans) await this.delete(id);
    return orphans;
  }

  protected async invocation(ctx: UnitContext, cmd: CommandSpec): Promise<ShimInvocation> {
    await this.writeBundle(ctx, cmd, ctx.dir, ctx.cgroupPath);
    await this.delete(ctx.containerId);
    await rm(join(ctx.dir, KILLED_BY), { force: true });
    const pidFile = join(ctx.dir, 'main.pid');
    return {
      argv: [
        this.runc,
        ...this.globalArgs,
        'run',
        ...this.keyring(ctx),
        '--bundle',
        ctx.dir,
        '--pid-file',
        pidFile,
        ctx.containerId,
      ],
      env: { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
      cwd: ctx.dir,
    };
  }

  protected isPreExec(argv: readonly string[]): boolean {
    return argv[1] === 'init' && (argv[0] ?? '').endsWith('runc');
  }

  protected async abortStart(ctx: UnitContext): Promise<void> {
    await this.delete(ctx.containerId);
  }

  private async writeBundle(
    ctx: UnitContext,
    cmd: CommandSpec,
    bundle: string,
    cgroupsPath: string,
  ): Promise<void> {
    const plan = await this.rootfs(ctx);
    if (plan.idMap !== undefined) {
      checkMapped(cmd.user, plan.idMap);
      this.stateDirReachable ??= reachableByOthers(dirname(this.layout.root));
      await this.stateDirReachable;
      await openToMappedRoot(this.layout, ctx, plan.idMap, this.volumesDir);
    }
    const config = ociConfig(ctx.service, cmd, plan, cgroupsPath);
    await writeFile(join(bundle, 'config.json'), `${JSON.stringify(config, null, 1)}\n`, {
      mode: PRIVATE_FILE_MODE,
    });
  }

  private async rootfs(ctx: UnitContext): Promise<RootfsPlan> {
    const tmp = join(ctx.dir, 'tmp');
    const map = this.idMapping(ctx.service);
    const secrets = {
      ...((ctx.service.secrets ?? []).length > 0 ? { secrets: ctx.secretsDir } : {}),
      ...(map !== undefined ? { idMap: map } : {}),
    };
    if (ctx.service.rootDirectory !== '') {
      const volumes = ctx.service.binds ?? [];
      return {
        path: ctx.service.rootDirectory,
        readonly: false,
        binds: [],
        tmp,
        volumes,
        ...secrets,
      };
    }
    const binds: string[] = [];
    for (const dir of HOST_DIRS) {
      const st = await lstat(dir).catch(() => undefined);
      if (st?.isDirectory() === true) binds.push(dir);
    }
    const etc = await etcBinds(ctx.dir);
    return { path: join(ctx.dir, 'rootfs'), readonly: true, binds, tmp, etc, ...secrets };
  }

  /**
   * runc gives every container a session keyring of its own, charged to the container's root
   * as the host sees it: remapped, every container's is one unprivileged uid's, whose quota
   * (kernel.keys.maxkeys, 200) ended the 200th container with "unable to create session key:
   * disk quota exceeded". The seccomp profile denies every keyring call (seccomp.ts), so a
   * remapped container inherits the shim's keyring instead, unusable to it.
   */
  private keyring(ctx: UnitContext): string[] {
    return this.idMapping(ctx.service) !== undefined ? ['--no-new-keyring'] : [];
  }

  /** `running`, `created`, `stopped`..., or undefined when runc knows no such container. */
  private async state(id: string): Promise<string | undefined> {
    const res = await this.tool(['state', id]);
    if (res.code !== 0) return undefined;
    return (JSON.parse(res.stdout) as { status?: string }).status;
  }

  private async delete(id: string): Promise<void> {
    await this.tool(['delete', '--force', id]);
  }

  private async tool(
    args: readonly string[],
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      return await runCapture(this.runc, [...this.globalArgs, ...args]);
    } catch (err) {
      throw new RuntimeError('unsupported', `runc cannot be run: ${toolMessage(String(err))}`, {
        cause: err,
      });
    }
  }

  /** Removes the unit's and (once empty) the machine's cgroup directories, best effort. */
  private async tidyCgroups(ctx: UnitContext): Promise<void> {
    for (const controller of CGROUP_CONTROLLERS) {
      const base = join('/sys/fs/cgroup', controller);
      for (const path of [
        `${ctx.cgroupPath}${HOOK_SUFFIX}`,
        ctx.cgroupPath,
        this.layout.machineCgroup(),
        `/${ID_PREFIX}`,
      ]) {
        await rmdir(join(base, path)).catch(() => undefined);
      }
    }
  }
}

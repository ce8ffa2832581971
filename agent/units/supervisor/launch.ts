/**
 * Turning a unit's [Service] options into runnable commands, at run time (as systemd does):
 * the user, the environment (Environment=, then EnvironmentFile= which wins), the working
 * directory, `$VAR` expansion, and the program looked up where the unit will see it. Every
 * problem becomes a {@link RuntimeError} whose message names the option, so a unit that can
 * never run fails with a reason instead of an exit status 127.
 */
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { expandExecArgv, parseEnvironmentFile } from '../../../unit/index.js';
import type { ExecCommand } from '../../../unit/model.js';
import type { CommandSpec, RuntimeDriver, UnitContext } from '../../runtime/driver.js';
import { RuntimeError } from '../../runtime/errors.js';
import { ROOT_USER, resolveUser, type UnitUser } from '../../runtime/users.js';

/** systemd's PATH for services. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** What every command of one run of a unit shares. */
export interface Launch {
  readonly user: UnitUser;
  readonly env: ReadonlyMap<string, string>;
  /** Absolute, as the unit sees it. */
  readonly cwd: string;
}

/** The agent's own account: what units without User= run as under a non-root agent. */
export function agentUser(): UnitUser {
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) return ROOT_USER;
  const info = userInfo();
  return {
    name: info.username,
    uid,
    gid: process.getgid?.() ?? uid,
    groups: [],
    home: info.homedir,
    shell: info.shell ?? '/bin/sh',
  };
}

async function isDirectory(path: string | undefined): Promise<boolean> {
  if (path === undefined) return false;
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

async function isExecutableFile(path: string | undefined): Promise<boolean> {
  if (path === undefined) return false;
  try {
    if (!(await stat(path)).isFile()) return false;
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function environment(
  ctx: UnitContext,
  user: UnitUser | undefined,
): Promise<Map<string, string>> {
  const env = new Map<string, string>([['PATH', DEFAULT_PATH]]);
  if (user !== undefined) {
    env.set('HOME', user.home);
    env.set('USER', user.name);
    env.set('LOGNAME', user.name);
    env.set('SHELL', user.shell);
  }
  for (const [key, value] of ctx.service.environment) env.set(key, value);
  for (const file of ctx.service.environmentFiles) {
    let text: string;
    try {
      text = await readFile(file.path, 'utf8');
    } catch (err) {
      if (file.optional) continue;
      const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String(err);
      throw new RuntimeError('missing-environment-file', `EnvironmentFile=${file.path}: ${why}`);
    }
    for (const [key, value] of parseEnvironmentFile(text)) env.set(key, value);
  }
  return env;
}

/**
 * Resolves what all commands of the next run share. Throws `bad-user`,
 * `missing-environment-file` or `bad-working-directory`.
 */
export async function prepareLaunch(driver: RuntimeDriver, ctx: UnitContext): Promise<Launch> {
  const { service } = ctx;
  const user =
    service.user !== '' ? await resolveUser(service.user, driver.userRoot(ctx)) : undefined;
  const env = await environment(ctx, user);
  // systemd's name for where credentials are; set last, so Environment= cannot point it away
  // (the files were written before the run: supervisor/secrets.ts).
  if ((service.secrets ?? []).length > 0) env.set('CREDENTIALS_DIRECTORY', driver.secretsPath(ctx));
  const runAs = user ?? agentUser();
  const optional = service.workingDirectory.startsWith('-');
  const wanted = optional ? service.workingDirectory.slice(1) : service.workingDirectory;
  let cwd = wanted === '' ? '/' : wanted === '~' ? runAs.home : wanted;
  if (!(await isDirectory(driver.hostPath(ctx, cwd)))) {
    if (!optional) {
      throw new RuntimeError(
        'bad-working-directory',
        `WorkingDirectory=${wanted}: no such directory${ctx.service.rootDirectory !== '' ? ` in RootDirectory=${ctx.service.rootDirectory}` : ''}`,
      );
    }
    cwd = '/';
  }
  return { user: runAs, env, cwd };
}

/** The program a unit runs for `path`: absolute as written, or a bare name looked up in PATH. */
async function findProgram(
  driver: RuntimeDriver,
  ctx: UnitContext,
  path: string,
  env: ReadonlyMap<string, string>,
): Promise<string | undefined> {
  if (path.startsWith('/')) {
    return (await isExecutableFile(driver.hostPath(ctx, path))) ? path : undefined;
  }
  for (const dir of (env.get('PATH') ?? DEFAULT_PATH).split(':')) {
    if (!dir.startsWith('/')) continue;
    const candidate = join(dir, path);
    if (await isExecutableFile(driver.hostPath(ctx, candidate))) return candidate;
  }
  return undefined;
}

/**
 * One exec line, ready for the driver: `$VAR` expanded against the launch environment plus
 * `extraEnv` (MAINPID, EXIT_STATUS...), the program checked to exist and be executable where
 * the unit runs. `key` names the option in messages (e.g. `ExecStartPre`).
 */
export async function resolveCommand(
  driver: RuntimeDriver,
  ctx: UnitContext,
  launch: Launch,
  key: string,
  cmd: ExecCommand,
  extraEnv: ReadonlyMap<string, string> = new Map(),
): Promise<CommandSpec> {
  const env = new Map([...launch.env, ...extraEnv]);
  const path = await findProgram(driver, ctx, cmd.path, env);
  if (path === undefined) {
    const where =
      ctx.service.rootDirectory !== ''
        ? ` in RootDirectory=${ctx.service.rootDirectory}`
        : cmd.path.startsWith('/')
          ? ''
          : ' in PATH';
    throw new RuntimeError(
      'missing-program',
      `${key}=${cmd.path} (line ${cmd.line}): no such executable${where}`,
    );
  }
  const argv = expandExecArgv(cmd, env);
  return {
    path,
    args: argv.slice(1),
    env: Object.fromEntries(env),
    cwd: launch.cwd,
    user: cmd.privileged ? agentUser() : launch.user,
    ...(cmd.privileged ? { privileged: true } : {}),
  };
}

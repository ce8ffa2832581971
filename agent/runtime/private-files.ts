/**
 * The agent's files are its own: a unit's config.json and meta.json hold its environment
 * (secrets included) and its log holds what it printed, so no other user of the host may read
 * them. Directories the agent makes are 0700 and files 0600 (the umask could only loosen
 * what `mode` asks for at creation, hence the explicit chmod); {@link tightenMachineFiles}
 * fixes what an older agent left 0644 under 0755, once at start. Containers never see these
 * paths: runc binds what a unit needs by absolute path, as root, before the unit runs.
 */
import { chmod, mkdir, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { MachineLayout } from './layout.js';

/** Mode of every directory the agent makes under its state directory. */
export const PRIVATE_DIR_MODE = 0o700;
/** Mode of every file the agent writes there (configs, meta, logs). */
export const PRIVATE_FILE_MODE = 0o600;

/** Files of a unit directory that hold the unit's definition; logs are in the logs dir. */
const UNIT_DIR_FILES = /^(meta\.json|config\.json|exec.*-process\.json|watchdog|.*\.tmp)$/;

/**
 * Makes `dir` and sets it to 0700. Missing parents (the state directory and above) are made
 * with the usual mode: they are the operator's, and closing them would keep a container in a
 * user namespace from reaching its root (and an agent that decided --userns-remap=auto before
 * they existed would then fail every unit).
 */
export async function mkdirPrivate(dir: string): Promise<void> {
  await mkdir(dirname(dir), { recursive: true });
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  await chmod(dir, PRIVATE_DIR_MODE);
}

async function chmodIfThere(path: string, mode: number): Promise<void> {
  await chmod(path, mode).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  });
}

async function entries(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

/**
 * Creates the machine's directories 0700 and sets what an earlier agent wrote to 0700/0600:
 * the machine root, `units/` and every unit directory (with its bundle files and `hook/`),
 * `logs/` and every log. The work is one directory listing per unit of this machine.
 */
export async function tightenMachineFiles(layout: MachineLayout): Promise<void> {
  for (const dir of [layout.root, layout.unitsDir, layout.logsDir]) await mkdirPrivate(dir);
  for (const name of await entries(layout.unitsDir)) {
    const dir = join(layout.unitsDir, name);
    await chmodIfThere(dir, PRIVATE_DIR_MODE);
    for (const file of await entries(dir)) {
      if (UNIT_DIR_FILES.test(file)) await chmodIfThere(join(dir, file), PRIVATE_FILE_MODE);
    }
    await chmodIfThere(join(dir, 'hook', 'config.json'), PRIVATE_FILE_MODE);
  }
  for (const file of await entries(layout.logsDir)) {
    await chmodIfThere(join(layout.logsDir, file), PRIVATE_FILE_MODE);
  }
}

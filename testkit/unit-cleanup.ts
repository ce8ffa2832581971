/**
 * Removing what an agent's units left behind on this host: shims and their process groups,
 * runc containers and cgroups, overlay roots, the state directory. Tests and benchmarks use
 * it in teardown, so a failed run still leaves nothing running.
 */
import { execFile } from 'node:child_process';
import { readFile, readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CGROUP_CONTROLLERS, isRuncUsable } from '../agent/index.js';
import { unmountUnder } from '../agent/runtime/mounts.js';

const run = promisify(execFile);
/** Where runc (run as root, without --root) keeps its containers' state. */
const RUNC_ROOT = '/run/runc';

/** The drivers the suite runs against: process always, runc where it can run (root). */
export const DRIVERS: readonly ('process' | 'runc')[] = (await isRuncUsable())
  ? ['process', 'runc']
  : ['process'];

/** Kills what machine `id` left running (see {@link killUnits}), then removes `stateDir`. */
export async function cleanup(stateDir: string, id: string): Promise<void> {
  await killUnits(stateDir, id);
  // Image units' overlay roots: unmounted before anything under them is deleted.
  await unmountUnder(stateDir);
  await rm(stateDir, { recursive: true, force: true });
}

/**
 * Kills what machine `id`'s units left running under `stateDir` (shims and their process
 * groups, runc containers, cgroups), leaving the directory: for a second machine sharing it.
 */
export async function killUnits(stateDir: string, id: string): Promise<void> {
  const unitsDir = join(stateDir, id, 'units');
  for (const name of await readdir(unitsDir).catch(() => [] as string[])) {
    const text = await readFile(join(unitsDir, name, 'shim.pid'), 'utf8').catch(() => '');
    const pid = Number(text.trim());
    if (pid > 0) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  if (DRIVERS.includes('runc')) {
    // runc's state directory, read directly: `runc list` fails as a whole when another
    // container is deleted while it lists (other test files run at the same time).
    const ids = await readdir(RUNC_ROOT).catch(() => [] as string[]);
    for (const cid of ids) {
      if (cid.startsWith(`flotilla-${id}-`))
        await run('runc', ['delete', '-f', cid]).catch(() => undefined);
    }
    for (const controller of CGROUP_CONTROLLERS)
      await removeTree(join('/sys/fs/cgroup', controller, 'flotilla', id));
  }
}

/** rmdir, depth first (cgroup directories cannot be removed with rm -r). */
async function removeTree(dir: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) if (entry.isDirectory()) await removeTree(join(dir, entry.name));
  await rmdir(dir).catch(() => undefined);
}

/** runc's container ids on this host. */
export async function runcContainers(): Promise<string[]> {
  return (await readdir(RUNC_ROOT).catch(() => [] as string[])).sort();
}

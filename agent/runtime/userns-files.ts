/**
 * The host files a remapped container's root must own or reach (userns.ts): runc 1.1 binds
 * the rootfs onto itself as that root, a host uid with no rights over the agent's 0700
 * directories, and makes mount points in the rootfs as it.
 */
import { chmod, chown, lchown, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { UnitContext } from './driver.js';
import { RuntimeError } from './errors.js';
import type { MachineLayout } from './layout.js';
import { stateDirProblem, type IdMap } from './userns.js';

/** A unit directory and its parents up to the machine's: traversable by the mapped root only. */
export const USERNS_DIR_MODE = 0o710;

/**
 * The unit's directory and its parents up to the machine's become 0710 with the mapped root's
 * group (Docker's `/var/lib/docker/<uid>.<gid>`), so no other host user can traverse them, and
 * the named volumes the agent made (under `volumesDir`) are handed to the mapped root. Other
 * files stay 0600 of the host's root: the container's root cannot read a config.json.
 */
export async function openToMappedRoot(
  layout: MachineLayout,
  ctx: UnitContext,
  map: IdMap,
  volumesDir: string,
): Promise<void> {
  for (const dir of [layout.root, layout.unitsDir, ctx.dir]) {
    await chown(dir, 0, map.gid);
    await chmod(dir, USERNS_DIR_MODE);
  }
  for (const bind of ctx.service.binds ?? []) {
    if (!bind.source.startsWith(`${volumesDir}/`)) continue;
    const st = await lstat(bind.source).catch(() => undefined);
    if (st?.uid === 0 && st.isDirectory()) await chown(bind.source, map.uid, map.gid);
  }
}

/**
 * Hands a default rootfs (empty directories, symlinks, the mount points runc made) to the
 * mapped root. It holds a few dozen entries: binds are made in the container's namespace,
 * never on the host, so nothing of the host is walked.
 */
export async function chownTree(path: string, uid: number, gid: number): Promise<void> {
  const st = await lstat(path);
  if (st.uid !== uid || st.gid !== gid) await lchown(path, uid, gid);
  if (!st.isDirectory()) return;
  for (const name of await readdir(path)) await chownTree(join(path, name), uid, gid);
}

/**
 * The state directory becomes traversable by everyone (0711 at most, as Docker's
 * /var/lib/docker): listing it stays closed, and the machine directories under it are 0700 or
 * 0710. Its parents are the operator's: one closed to others (checked when the driver was
 * made, and again here in case it changed since) fails the unit saying which.
 */
export async function reachableByOthers(stateDir: string): Promise<void> {
  const st = await lstat(stateDir);
  if ((st.mode & 0o001) === 0) await chmod(stateDir, (st.mode & 0o7777) | 0o011);
  const problem = await stateDirProblem(stateDir);
  if (problem !== undefined) throw new RuntimeError('unsupported', problem);
}

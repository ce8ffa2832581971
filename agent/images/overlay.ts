/**
 * A unit's root filesystem: an overlay of its image's layers (read-only, shared by every unit
 * of the image) under its own upper directory, mounted in the unit's state directory:
 *
 * ```
 * <unit dir>/image/upper   what the unit wrote       <unit dir>/image/work   overlayfs's own
 * <unit dir>/image/root    the mount, the container's root (RootDirectory)
 * ```
 *
 * The lower layers are named relative to the layer directory (mount runs there), which keeps
 * the mount options under the kernel's one-page limit for images of up to ~60 layers.
 */
import { chown, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { mountsUnder } from '../runtime/mounts.js';
import { ImageStoreError } from './errors.js';
import { lastLines, runTool } from './tools.js';
import type { IdMap } from '../runtime/userns.js';

/** The kernel takes one page of mount options. */
const MOUNT_OPTIONS_MAX = 4000;

/** The root directory of the unit whose state directory is `unitDir`. */
export function rootOf(unitDir: string): string {
  return join(unitDir, 'image', 'root');
}

/**
 * Mounts the overlay of `layers` (directory names inside `layersDir`, bottom layer first) at
 * the unit's root, its upper directory owned by `map`'s root when given; a root already mounted (an adopted unit) is left as it is. Returns it.
 */
export async function mountRoot(
  unitDir: string,
  layersDir: string,
  layers: readonly string[],
  map?: IdMap,
): Promise<string> {
  const root = rootOf(unitDir);
  if ((await mountsUnder(root)).includes(root)) return root;
  const upper = join(unitDir, 'image', 'upper');
  const work = join(unitDir, 'image', 'work');
  for (const dir of [upper, work, root]) await mkdir(dir, { recursive: true });
  // The root directory of the overlay is the upper's: the container's root must own it.
  if (map !== undefined) for (const dir of [upper, work]) await chown(dir, map.uid, map.gid);
  // overlayfs lists the top layer first.
  const lower = [...layers].reverse().join(':');
  const options = `lowerdir=${lower},upperdir=${upper},workdir=${work}`;
  if (options.length > MOUNT_OPTIONS_MAX) {
    throw new ImageStoreError(
      'invalid-image',
      `the image has too many layers (${layers.length}) for one overlay mount`,
    );
  }
  const run = await runTool(
    ['mount', '-t', 'overlay', 'overlay', '-o', options, root],
    30_000,
    layersDir,
  );
  if (run.code !== 0)
    throw new ImageStoreError(
      'failed',
      `cannot mount the image's overlay: ${lastLines(run.stderr)}`,
    );
  return root;
}

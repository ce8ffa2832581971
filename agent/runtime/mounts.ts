/**
 * Mounts on the host under a unit's state directory (an image unit's overlay root is one):
 * finding them, and unmounting them before the directory is deleted, so a removal never
 * deletes through a mount. The image store mounts; the runtime only finds and unmounts.
 */
import { readFile } from 'node:fs/promises';
import { runCapture } from './spawn.js';

/** Mount points at or under `dir`, deepest first (from /proc/self/mountinfo). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const points = info
    .split('\n')
    .map((line) => (line.split(' ')[4] ?? '').replace(/\\040/g, ' '))
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Unmounts everything mounted at or under `dir` (lazily: a busy mount goes when released). */
export async function unmountUnder(dir: string): Promise<void> {
  for (const point of await mountsUnder(dir)) {
    await runCapture('umount', ['--lazy', point], 30_000).catch(() => undefined);
  }
}

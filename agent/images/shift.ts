/**
 * Shifting an unpacked layer's owners into a user namespace's host ids (runtime/userns.ts),
 * as Docker's `userns-remap` unpacks layers: runc 1.1 has no idmapped mounts, so a remapped
 * container's root (host uid FIRST) can only own, and write through overlay, what the layer
 * holds as FIRST. Container ids beyond the map become the mapped nobody (65534).
 *
 * chown clears set-user-ID and set-group-ID bits, so they are set again from the mode read
 * before; it also drops `security.capability` attributes (file capabilities), which are not
 * restored: under NoNewPrivileges, the default, they grant nothing anyway. Hard links are
 * shifted once (by inode). Never follows symlinks.
 */
import { chmod, lchown, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { hostId, type IdMap } from '../runtime/userns.js';

/** Mode bits chown clears on regular files. */
const SET_ID_BITS = 0o6000;

/** Shifts the owner of `root` and everything under it by `map`; returns the entries shifted. */
export async function shiftOwners(root: string, map: IdMap): Promise<number> {
  const seen = new Set<number>();
  let shifted = 0;
  const one = async (path: string): Promise<boolean> => {
    const st = await lstat(path);
    if (st.nlink > 1 && !st.isDirectory()) {
      if (seen.has(st.ino)) return false;
      seen.add(st.ino);
    }
    await lchown(path, hostId(st.uid, map.uid, map.size), hostId(st.gid, map.gid, map.size));
    if (st.isFile() && (st.mode & SET_ID_BITS) !== 0) await chmod(path, st.mode & 0o7777);
    shifted++;
    return st.isDirectory();
  };
  const walk = async (dir: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const path = join(dir, name);
      if (await one(path)) await walk(path);
    }
  };
  if (await one(root)) await walk(root);
  return shifted;
}

/**
 * A unit's secrets on the host (`Secret=`, issue 30): one directory per unit under the
 * layout's `secretsRoot`, a tmpfs of its own when the agent is root (so the values never
 * touch a disk and go with one unmount), with one file per secret, 0400, owned by the
 * unit's user, in a 0500 directory of that user. A container sees the directory read-only
 * at `/run/secrets` (oci-spec.ts); a plain process through `$CREDENTIALS_DIRECTORY`.
 *
 * Nothing here logs or puts a value into an error: messages name the secret and the path.
 */
import { chmod, chown, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { RuntimeError } from './errors.js';
import { unmountUnder } from './mounts.js';
import { runCapture } from './spawn.js';

/** The parents are traversable (not listable), so a unit's own user reaches its directory. */
const PARENT_MODE = 0o711;
/** The unit's directory: its user reads and lists it, nobody writes it. */
const DIR_MODE = 0o500;
/** Each secret: its user reads it. */
const FILE_MODE = 0o400;
/** Room beyond the values themselves (tmpfs counts whole pages per file). */
const TMPFS_SLACK_BYTES = 64 * 1024;
/** A secret's file name: as unit/secrets.ts SECRET_NAME, checked again at the last door. */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Who owns a unit's secret files: the user its processes run as. */
export interface SecretOwner {
  readonly uid: number;
  readonly gid: number;
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Writes `values` into `dir` as described above, replacing what was there. Throws
 * `runtime-failed` when the tmpfs cannot be mounted (never with a value in the message).
 */
export async function writeSecretFiles(
  dir: string,
  values: ReadonlyMap<string, Buffer>,
  owner: SecretOwner,
): Promise<void> {
  await removeSecretFiles(dir);
  for (const parent of [dirname(dirname(dir)), dirname(dir)]) {
    await mkdir(parent, { recursive: true, mode: PARENT_MODE });
    await chmod(parent, PARENT_MODE);
  }
  await mkdir(dir, { mode: 0o700 });
  let bytes = TMPFS_SLACK_BYTES;
  for (const value of values.values()) bytes += value.length + 4096;
  if (isRoot()) {
    const opts = `size=${bytes},mode=0700,nosuid,nodev,noexec`;
    const res = await runCapture('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir]);
    if (res.code !== 0) {
      await rm(dir, { recursive: true, force: true });
      throw new RuntimeError(
        'runtime-failed',
        `cannot mount a tmpfs for the unit's secrets at ${dir}: ${res.stderr.trim().slice(0, 200)}`,
      );
    }
  }
  for (const [name, value] of values) {
    if (!FILE_NAME.test(name)) {
      throw new RuntimeError('runtime-failed', `secret name ${JSON.stringify(name)} is not valid`);
    }
    const file = join(dir, name);
    await writeFile(file, value, { mode: FILE_MODE, flag: 'wx' });
    await chmod(file, FILE_MODE);
    if (isRoot()) await chown(file, owner.uid, owner.gid);
  }
  await chmod(dir, DIR_MODE);
  if (isRoot()) await chown(dir, owner.uid, owner.gid);
}

/** Unmounts and deletes a unit's secrets directory; nothing there is not an error. */
export async function removeSecretFiles(dir: string): Promise<void> {
  await unmountUnder(dir);
  // A non-root agent cannot delete inside its own 0500 directory.
  await chmod(dir, 0o700).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}

/**
 * For units that reach `dir` by its host path (the process driver): throws `bad-user` unless
 * `owner` can traverse every directory above it, so a unit whose state dir is closed to its
 * User= fails saying which directory, instead of with EACCES from its own program.
 */
export async function checkReachable(dir: string, owner: SecretOwner): Promise<void> {
  if (owner.uid === 0) return;
  for (let d = dirname(dir); ; d = dirname(d)) {
    const st = await stat(d);
    const bit = st.uid === owner.uid ? 0o100 : st.gid === owner.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) {
      throw new RuntimeError(
        'bad-user',
        `the unit's user (uid ${owner.uid}) cannot reach its secrets under ${d} (mode ${(st.mode & 0o777).toString(8)}): make it traversable (chmod o+x ${d}) or run the unit without User=`,
      );
    }
    if (d === dirname(d)) return;
  }
}

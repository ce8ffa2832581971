/**
 * Unpacking one image layer, once, into a directory that overlayfs can use as a lower layer.
 *
 * GNU tar extracts (not node-tar: in tests here it rewrote absolute symlink targets and, with
 * preservePaths, let a crafted layer write outside its directory). GNU tar strips a leading
 * `/`, refuses members with `..`, and creates symlinks whose targets are absolute or climb
 * out only after everything else (placeholders first), so no member is written through one.
 * Numeric owners: the host's passwd must not rename the image's users. Then the OCI
 * whiteouts become overlay's: `.wh.NAME` a 0/0 character device `NAME`, `.wh..wh..opq` the
 * `trusted.overlay.opaque=y` attribute of its directory. Device nodes from the layer itself
 * are removed (a container gets devices from its runtime, never from an image). A whiteout
 * that names nothing (`.wh.`, `.wh...`) or a name the same layer also holds is refused.
 *
 * A layer is unpacked into a temporary directory and renamed into place when complete, so a
 * crash leaves either nothing or a whole layer.
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, rename, rm, unlink } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { ImageStoreError } from './errors.js';
import { lastLines, runTool } from './tools.js';
import { shiftOwners } from './shift.js';
import type { IdMap } from '../runtime/userns.js';

/** One unpack (tar) may take this long. */
export const UNPACK_TIMEOUT_MS = 300_000;

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

/** tar's flag for a layer's media type; throws for media types Flotilla cannot unpack. */
export function compressionFlag(mediaType: string): string[] {
  if (/tar\+gzip$|tar\.gzip$|diff\.tar\.gzip$/.test(mediaType)) return ['--gzip'];
  if (/tar\+zstd$/.test(mediaType)) return ['--zstd'];
  if (/\.tar$|layer\.v1\.tar$|rootfs\.diff\.tar$/.test(mediaType)) return [];
  throw new ImageStoreError(
    'invalid-image',
    `layer media type ${mediaType} is not supported (gzip, zstd or plain tar)`,
  );
}

/** What unpacking found, for the store's accounting. */
export interface UnpackResult {
  /** Bytes of regular files in the layer. */
  readonly bytes: number;
  readonly whiteouts: number;
  /** Device nodes the layer held, removed. */
  readonly devicesRemoved: number;
}

/**
 * Unpacks the layer blob `blob` (of `mediaType`) into `dir`, which must not exist yet, with
 * its owners shifted into `map` when given (shift.ts).
 * Throws ImageStoreError('invalid-image') when tar refuses the layer (unsafe paths included).
 */
export async function unpackLayer(
  blob: string,
  mediaType: string,
  dir: string,
  map?: IdMap,
): Promise<UnpackResult> {
  const tmp = `${dir}.tmp-${randomBytes(4).toString('hex')}`;
  await mkdir(tmp, { recursive: true });
  try {
    const run = await runTool(
      [
        'tar',
        '--extract',
        `--file=${blob}`,
        `--directory=${tmp}`,
        '--numeric-owner',
        '--same-permissions',
        '--no-overwrite-dir',
        ...compressionFlag(mediaType),
      ],
      UNPACK_TIMEOUT_MS,
    );
    if (run.code !== 0) {
      const why = run.timedOut ? `took over ${UNPACK_TIMEOUT_MS} ms` : lastLines(run.stderr);
      const full = /No space left/i.test(run.stderr);
      throw new ImageStoreError(
        full ? 'disk-full' : 'invalid-image',
        `layer ${blob.split('/').at(-1) ?? ''} cannot be unpacked: ${why}`,
      );
    }
    const result = await toOverlayForm(tmp);
    if (map !== undefined) await shiftOwners(tmp, map);
    await rename(tmp, dir);
    return result;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Converts whiteouts and removes device nodes under `root`; never follows symlinks. */
async function toOverlayForm(root: string): Promise<UnpackResult> {
  let bytes = 0;
  const whiteouts: string[] = [];
  const opaque: string[] = [];
  let devicesRemoved = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        await walk(path);
      } else if (entry.name === OPAQUE) {
        await unlink(path);
        opaque.push(dir);
      } else if (entry.name.startsWith(WHITEOUT)) {
        const target = entry.name.slice(WHITEOUT.length);
        // `.wh...` would make overlay's whiteout of the directory above (the layer's parent
        // at its top): no name of a whiteout may be empty, `.` or `..`.
        if (target === '' || target === '.' || target === '..') {
          throw new ImageStoreError(
            'invalid-image',
            `layer holds the whiteout "${entry.name}" in ${relative(root, dir) || '/'}, which names no file: refused`,
          );
        }
        await unlink(path);
        whiteouts.push(join(dir, target));
      } else if (entry.isCharacterDevice() || entry.isBlockDevice()) {
        await unlink(path);
        devicesRemoved++;
      } else if (entry.isFile()) {
        bytes += (await lstat(path)).size;
      }
    }
  };
  await walk(root);
  for (const path of whiteouts) {
    // A layer that both deletes and adds a name is malformed (OCI image spec, whiteouts).
    if (await exists(path)) {
      throw new ImageStoreError(
        'invalid-image',
        `layer both removes (whiteout) and holds ${relative(root, path)}: refused`,
      );
    }
    await tool(['mknod', path, 'c', '0', '0']);
  }
  for (const dir of opaque)
    await tool(['setfattr', '-n', 'trusted.overlay.opaque', '-v', 'y', dir]);
  return { bytes, whiteouts: whiteouts.length + opaque.length, devicesRemoved };
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

async function tool(argv: readonly string[]): Promise<void> {
  const run = await runTool(argv, 30_000);
  if (run.code !== 0)
    throw new ImageStoreError('failed', `${argv[0] ?? ''} failed: ${lastLines(run.stderr)}`);
}

/**
 * The submit step that pins image units: after validation and before anything is read or
 * written, each distinct `Image=` is resolved once through the registry (a few at a time),
 * and the files are rewritten to carry the digest. A registry's refusal refuses the submit
 * with its reason, naming the file and line; nothing is written.
 */
import { isRegistryError } from '../../registry/errors.js';
import { pinnedImage } from '../../registry/pin.js';
import { rewriteImageLine } from '../../unit/image-ref.js';
import type { RegistryOptions } from '../../registry/skopeo.js';
import { excerpt, parseImageReference, parseUnit } from '../../unit/index.js';
import type { ContainerOptions } from '../../unit/model.js';
import { ApiError } from '../gate/errors.js';
import type { ValidFile } from './unit-writes.js';

/** Registry look-ups one submit runs at once. */
const PIN_CONCURRENCY = 4;

/** `files` with every image unit's `Image=` pinned to a digest; others unchanged. */
export async function pinImages(
  files: readonly ValidFile[],
  registry: RegistryOptions,
): Promise<ValidFile[]> {
  checkAllowedRegistries(files, registry.allowedRegistries);
  const wanted = new Map<string, ContainerOptions>();
  for (const f of files) {
    const c = f.unit.container;
    if (c !== undefined) wanted.set(`${c.pull} ${c.image}`, c);
  }
  if (wanted.size === 0) return [...files];
  const pinned = new Map<string, string>();
  const queue = [...wanted];
  const worker = async (): Promise<void> => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      const [key, container] = next;
      try {
        pinned.set(key, await pinnedImage(container, registry));
      } catch (err) {
        if (!isRegistryError(err)) throw err;
        const users = files.filter((f) => sameImage(f, key));
        const where = users.map((f) => `${f.name}:${container.imageLine}`).join(', ');
        const code =
          err.code === 'unreachable' || err.code === 'failed' ? 'unavailable' : 'invalid-argument';
        throw new ApiError(
          code,
          `${where}: Image=${err.brief}${code === 'unavailable' ? '; try again once the registry is reachable, or set Pull=never to submit the image as given' : ''}`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PIN_CONCURRENCY, queue.length) }, worker));
  return files.map((f) => {
    const c = f.unit.container;
    if (c === undefined) return f;
    const to = pinned.get(`${c.pull} ${c.image}`) ?? c.image;
    if (to === c.image) return f;
    const contents = rewriteImageLine(f.contents, c.imageLine, c.image, to);
    if (contents === undefined) {
      throw new ApiError(
        'invalid-argument',
        `${f.name}:${c.imageLine}: write Image= on one line so its digest can be pinned`,
      );
    }
    return { ...f, contents, unit: parseUnit(f.name, contents) };
  });
}

/**
 * `--allowed-registries`: an `Image=` naming another registry is refused before any network
 * call (a submit must not make the scheduler probe whatever host:port a file names).
 */
function checkAllowedRegistries(
  files: readonly ValidFile[],
  allowed: readonly string[] | undefined,
): void {
  if (allowed === undefined) return;
  for (const f of files) {
    const c = f.unit.container;
    if (c === undefined) continue;
    const ref = parseImageReference(c.image);
    const host = typeof ref === 'string' ? '' : ref.registry;
    if (allowed.includes(host)) continue;
    throw new ApiError(
      'permission-denied',
      `${f.name}:${c.imageLine}: Image=${excerpt(c.image, 120)} names registry ${excerpt(host, 80) || '(none)'}, which this cluster does not allow (--allowed-registries ${excerpt(allowed.join(','), 200)}); use an image from one of those`,
    );
  }
}

function sameImage(f: ValidFile, key: string): boolean {
  const c = f.unit.container;
  return c !== undefined && `${c.pull} ${c.image}` === key;
}

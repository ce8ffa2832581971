/**
 * Pinning (Docker Swarm's): a unit's `Image=` tag is resolved to the digest it names now,
 * once, when the unit is submitted or updated; the stored file says `Image=host/repo:tag@
 * sha256:...`, so every instance on every machine runs that digest, and a later push to the
 * tag changes nothing until the unit is submitted again.
 */
import type { ContainerOptions } from '../unit/model.js';
import { parseImageReference, transportReference } from '../unit/image-ref.js';
import { RegistryError } from './errors.js';
import { inspectManifest, type RegistryOptions } from './skopeo.js';

/**
 * The `Image=` value to store for `container`: as written with `Pull=never` (the agent must
 * already hold it), otherwise the reference with the digest its registry gives now. An image
 * given with a digest is checked to exist. Throws {@link RegistryError} with the registry's
 * reason.
 */
export async function pinnedImage(
  container: ContainerOptions,
  opts: RegistryOptions,
  signal?: AbortSignal,
): Promise<string> {
  if (container.pull === 'never') return container.image;
  const ref = parseImageReference(container.image);
  if (typeof ref === 'string') throw new RegistryError('invalid-image', ref);
  const { digest } = await inspectManifest(opts, ref.registry, transportReference(ref), signal);
  if (ref.digest !== '') {
    if (ref.digest !== digest) {
      throw new RegistryError(
        'invalid-image',
        `${container.image}: the registry's manifest has digest ${digest}`,
      );
    }
    return container.image;
  }
  return `${container.image}@${digest}`;
}

/**
 * The step an image unit takes before each lifecycle: have its image in the store (pulling
 * it, one pull per image, progress in the state), mount its overlay root, and turn its
 * `[Container]` options into the [Service] options the driver runs. A pull that fails leaves
 * the unit `failed` with the registry's reason and is tried again with a doubling back-off;
 * the other units of the machine are not affected.
 */
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout } from 'node:timers/promises';
import { formatBytes } from '../../../unit/excerpt.js';
import type { BindMount, ContainerOptions, ServiceOptions } from '../../../unit/model.js';
import { imageService } from '../../images/image-service.js';
import type { ImageStore, LocalImage, PullProgress } from '../../images/store.js';
import { parseImageReference } from '../../../unit/image-ref.js';
import { describeError, RuntimeError } from '../../runtime/errors.js';
import type { StateChange } from './policy.js';
import type { IdMap } from '../../runtime/userns.js';

/** What the image step needs from its supervisor. */
export interface ImageStepHost {
  readonly unitDir: string;
  /** Where named volumes live on this machine. */
  readonly volumesDir: string;
  /** The user namespace the unit will run in, given its options (the driver's idMapping). */
  idMapping(service: ServiceOptions): IdMap | undefined;
  readonly service: ServiceOptions;
  readonly container: ContainerOptions;
  readonly images: ImageStore | undefined;
  /** Abort: give up (the unit is stopping or the agent lets go). */
  readonly signal: AbortSignal;
  /** The longest pause between attempts. */
  readonly retryCapMs: number;
  set(change: StateChange): void;
  note(text: string): void;
}

/** First pause after a failed pull; it doubles up to the cap. */
const RETRY_FIRST_MS = 1000;
/** Progress states are reported at most this often (each is an etcd write). */
const PROGRESS_EVERY_MS = 1000;

/** `12/40 MB`-style progress text. */
export function progressText(p: PullProgress): string {
  if (p.totalBytes === 0) return `pulling ${p.image}`;
  return `pulling ${p.image}, ${formatBytes(p.doneBytes)}/${formatBytes(p.totalBytes)}`;
}

/**
 * The unit's [Service] options on its mounted image root, or undefined when `signal` aborted
 * first. Retries failures until then.
 */
export async function prepareImage(host: ImageStepHost): Promise<ServiceOptions | undefined> {
  let delay = RETRY_FIRST_MS;
  for (let attempt = 1; !host.signal.aborted; attempt++) {
    try {
      return await attemptImage(host);
    } catch (err) {
      if (host.signal.aborted) return undefined;
      const why = describeError(err);
      const message = `${why}; retrying in ${Math.round(delay / 1000)} s (attempt ${attempt})`;
      host.set({ activeState: 'failed', subState: 'failed', pid: 0, message });
      host.note(message);
      // An abort ends the pause early (resolved, not thrown): the loop then stops.
      await setTimeout(delay, undefined, { signal: host.signal }).catch(() => undefined);
      delay = Math.min(delay * 2, host.retryCapMs);
    }
  }
  return undefined;
}

async function attemptImage(host: ImageStepHost): Promise<ServiceOptions> {
  const { container, images } = host;
  if (images === undefined) {
    throw new RuntimeError(
      'unsupported',
      'this agent has no image store (it runs the process driver)',
    );
  }
  let last = 0;
  const onProgress = (p: PullProgress): void => {
    const now = Date.now();
    if (now - last < PROGRESS_EVERY_MS && p.doneBytes < p.totalBytes) return;
    last = now;
    host.set({ activeState: 'activating', subState: 'pulling', pid: 0, message: progressText(p) });
  };
  const image = await images.ensure(container.image, container.pull, onProgress);
  let binds: BindMount[];
  try {
    binds = await volumeBinds(host);
  } catch (err) {
    images.unhold(image);
    throw err;
  }
  // Decided before the root exists: its layers must be unpacked for the same mapping.
  const map = host.idMapping({ ...host.service, image: image.reference, binds });
  const root = await images.mount(host.unitDir, image, map);
  return imageService(host.service, container, image.config, runningName(image), root, binds);
}

/** `host/repo@sha256:...`: the repository pulled and the manifest that runs. */
function runningName(image: LocalImage): string {
  const ref = parseImageReference(image.reference);
  const repo = typeof ref === 'string' ? image.reference : `${ref.registry}/${ref.repository}`;
  return `${repo}@${image.manifest}`;
}

/** The unit's volumes as host binds: named ones created under the machine's volume dir. */
async function volumeBinds(host: ImageStepHost): Promise<BindMount[]> {
  const binds: BindMount[] = [];
  for (const v of host.container.volumes) {
    let source = v.source;
    if (v.named) {
      source = join(host.volumesDir, v.source);
      await mkdir(source, { recursive: true });
    } else if (!(await stat(source).catch(() => undefined))) {
      throw new RuntimeError(
        'bad-working-directory',
        `Volume=${v.source}:${v.destination}: ${v.source} does not exist on this machine`,
      );
    }
    binds.push({ source, destination: v.destination, readOnly: v.readOnly });
  }
  return binds;
}

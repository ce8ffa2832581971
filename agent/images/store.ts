/**
 * The agent's image store: one content store for every unit of the machine.
 *
 * ```
 * <dir>/blobs/sha256/<hex>     every blob (manifests, configs, layers), shared: skopeo's
 *                              --dest-shared-blob-dir, so a layer two images share is stored once
 * <dir>/oci/<key>/             one OCI layout per image (parallel copies into ONE layout lose
 *                              tags), holding only its index
 * <dir>/layers/<hex>/          each layer unpacked once (see layers.ts), lower dirs of overlays
 * <dir>/layers/<hex>.json      its unpacked size
 * <dir>/layers-<uid>-<gid>-<n>/ the same, owners shifted for a user namespace (shift.ts): one
 *                              directory per mapping, so a changed --userns-remap never mounts
 *                              layers made for another
 * <dir>/images/<key>.json      a pulled image: reference, manifest, config, layers, last use
 * ```
 *
 * One pull per image reference at a time: units that want an image being pulled wait for that
 * pull. Garbage collection removes the least recently used images no unit uses, and then the
 * layers and blobs no remaining image needs, until the store is within its budget.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RegistryError, classifySkopeo } from '../../registry/errors.js';
import { runSkopeo, sourceFlags, sourceOf, type RegistryOptions } from '../../registry/skopeo.js';
import { parseImageReference, shortImageName, transportReference } from '../../unit/image-ref.js';
import type { PullPolicy } from '../../unit/model.js';
import { unpackLayer } from './layers.js';
import { blobPath, layoutManifest, readConfig, readManifest, type ImageConfig } from './oci.js';
import { mountRoot } from './overlay.js';
import { layersDirName, type IdMap } from '../runtime/userns.js';

/** Options of {@link ImageStore}. */
export interface ImageStoreOptions {
  /** The store's directory. */
  readonly dir: string;
  readonly registry: RegistryOptions;
  /** Budget in bytes; 0: a quarter of the disk holding `dir` (see {@link defaultBudget}). */
  readonly maxBytes: number;
  /** How often a pull reports progress. Default 500 ms. */
  readonly progressMs?: number;
  /** The mapping a pull unpacks layers for (most units run in it); absent: unshifted. */
  readonly idMap?: IdMap;
}

/** Bytes of a pull so far and in all (from the manifest's layer and config sizes). */
export interface PullProgress {
  readonly image: string;
  readonly doneBytes: number;
  readonly totalBytes: number;
}

/** An image ready to run: what its config says, and its unpacked layers, bottom first. */
export interface LocalImage {
  readonly key: string;
  /** The reference pulled, e.g. `host/repo@sha256:...`. */
  readonly reference: string;
  /** The image manifest's digest (what runs). */
  readonly manifest: string;
  readonly config: ImageConfig;
  /** Layer directory names (hex digests) inside the layer directory of a mapping. */
  readonly layers: readonly string[];
}

interface ImageRecord extends LocalImage {
  readonly version: 1;
  readonly blobs: readonly string[];
  readonly lastUsed: number;
}

/** The parts of a raw manifest or manifest list the progress total needs. */
interface ManifestDoc {
  readonly layers?: { digest?: string; size?: number }[];
  readonly manifests?: { digest?: string; platform?: { os?: string; architecture?: string } }[];
}

/** The tag skopeo writes each image's layout under. */
const TAG = 'image';

/** A quarter of the filesystem holding `dir`. */
export async function defaultBudget(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return Math.floor((fs.blocks * fs.bsize) / 4);
}

/** The store. Construct one per agent; safe to call concurrently. */
export class ImageStore {
  readonly dir: string;
  readonly layersDir: string;
  private readonly blobs: string;
  private readonly opts: ImageStoreOptions;
  private readonly pulls = new Map<string, Promise<LocalImage>>();
  private readonly unpacks = new Map<string, Promise<void>>();
  /** Unit directory -> the image its mounted root is made of. */
  private readonly inUse = new Map<string, LocalImage>();
  /** Pulls started (images fetched from a registry), for tests and metrics. */
  readonly stats = { pulls: 0 };
  /** Per image key being obtained: who wants its progress, and the latest. */
  private readonly progress = new Map<
    string,
    { listeners: Set<(p: PullProgress) => void>; last?: PullProgress }
  >();
  /** Images handed out by ensure() and not yet mounted, with how many times. */
  private readonly held = new Map<string, number>();
  private budget: number;
  private collecting: Promise<void> | undefined;
  private collectAgain = false;

  constructor(opts: ImageStoreOptions) {
    this.opts = opts;
    this.dir = opts.dir;
    this.blobs = join(opts.dir, 'blobs');
    this.layersDir = join(opts.dir, layersDirName(opts.idMap));
    this.budget = opts.maxBytes;
  }

  /**
   * The image `reference` names, pulled per `pull`: `missing`/`newer` only when the store
   * lacks it (a pinned reference never changes), `always` the tag afresh on every call,
   * `never` only from the store. Throws RegistryError saying why it cannot be had (or
   * ImageStoreError when a layer cannot be unpacked here).
   */
  async ensure(
    reference: string,
    pull: PullPolicy,
    onProgress?: (p: PullProgress) => void,
  ): Promise<LocalImage> {
    const ref = parseImageReference(reference);
    if (typeof ref === 'string') throw new RegistryError('invalid-image', `${reference}: ${ref}`);
    const source = pull === 'always' && ref.tag !== '' ? { ...ref, digest: '' } : ref;
    const from = transportReference(source);
    const key = createHash('sha256').update(from).digest('hex').slice(0, 32);
    // Claimed synchronously: a second caller for the key waits for this one, never pulls too.
    let job = this.pulls.get(key);
    if (job === undefined) {
      job = this.obtain(key, from, pull, shortImageName(source), reference).finally(() => {
        this.pulls.delete(key);
        this.progress.delete(key);
      });
      this.pulls.set(key, job);
    }
    const listeners = this.progress.get(key)?.listeners ?? new Set();
    if (onProgress !== undefined) {
      listeners.add(onProgress);
      const last = this.progress.get(key)?.last;
      if (last !== undefined) onProgress(last);
    }
    if (!this.progress.has(key)) this.progress.set(key, { listeners });
    try {
      return this.hold(await job);
    } finally {
      if (onProgress !== undefined) listeners.delete(onProgress);
    }
  }

  /** The image from the store when `pull` allows, else pulled. */
  private async obtain(
    key: string,
    from: string,
    pull: PullPolicy,
    name: string,
    reference: string,
  ): Promise<LocalImage> {
    if (pull !== 'always') {
      const have = await this.readRecord(key);
      if (have !== undefined && (await this.complete(have))) return this.touch(have);
      if (pull === 'never') {
        throw new RegistryError(
          'not-found',
          `${reference} is not in this machine's image store and Pull=never`,
        );
      }
    }
    this.stats.pulls++;
    return this.pull(key, from, name, (p) => {
      const entry = this.progress.get(key);
      if (entry === undefined) return;
      entry.last = p;
      for (const listener of entry.listeners) listener(p);
    });
  }

  /**
   * Mounts `image` as the root of the unit in `unitDir`, of layers unpacked for the unit's
   * user namespace `map` (unpacked now from the image's blobs when the pull made them for
   * another), and counts it in use; returns it.
   */
  async mount(unitDir: string, image: LocalImage, map?: IdMap): Promise<string> {
    this.inUse.set(unitDir, image);
    this.unhold(image);
    const dir = join(this.dir, layersDirName(map));
    if (dir !== this.layersDir) {
      await mkdir(dir, { recursive: true });
      const manifest = await readManifest(this.blobs, image.manifest);
      for (const l of manifest.layers) await this.unpack(l.digest, l.mediaType, dir, map);
    }
    const root = await mountRoot(unitDir, dir, image.layers, map);
    void this.collect();
    return root;
  }

  /** Gives up an image {@link ensure} returned without mounting it. */
  unhold(image: LocalImage): void {
    const n = (this.held.get(image.key) ?? 0) - 1;
    if (n > 0) this.held.set(image.key, n);
    else this.held.delete(image.key);
  }

  /** An image between ensure() and mount() is in use: collection must not take it. */
  private hold(image: LocalImage): LocalImage {
    this.held.set(image.key, (this.held.get(image.key) ?? 0) + 1);
    return image;
  }

  /** The unit in `unitDir` no longer uses its image (its root is unmounted by the driver). */
  release(unitDir: string): void {
    if (this.inUse.delete(unitDir)) void this.collect();
  }

  /** Bytes the store holds: every blob and every unpacked layer. */
  async usage(): Promise<number> {
    let bytes = 0;
    for (const name of await readdir(join(this.blobs, 'sha256')).catch(() => [])) {
      bytes += (await stat(join(this.blobs, 'sha256', name)).catch(() => ({ size: 0 }))).size;
    }
    for (const dir of await this.layerDirs()) {
      for (const name of await readdir(dir).catch(() => [])) {
        if (!name.endsWith('.json')) continue;
        const text = await readFile(join(dir, name), 'utf8').catch(() => '{}');
        const size = (JSON.parse(text) as { bytes?: unknown }).bytes;
        bytes += typeof size === 'number' ? size : 0;
      }
    }
    return bytes;
  }

  /** The layer directories of every mapping used so far (`layers`, `layers-<uid>-...`). */
  private async layerDirs(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names.filter((n) => /^layers(-\d+-\d+-\d+)?$/.test(n)).map((n) => join(this.dir, n));
  }

  /** Keys of the images the store holds. */
  async images(): Promise<LocalImage[]> {
    const out: LocalImage[] = [];
    for (const name of await readdir(join(this.dir, 'images')).catch(() => [])) {
      const rec = name.endsWith('.json') ? await this.readRecord(name.slice(0, -5)) : undefined;
      if (rec !== undefined) out.push(rec);
    }
    return out;
  }

  /**
   * Removes unused images, least recently used first, then whatever layers and blobs no
   * remaining image needs, until the store is within its budget. Waits while pulls run (their
   * blobs belong to no image yet). Never throws.
   */
  collect(): Promise<void> {
    if (this.collecting !== undefined) {
      // Asked during a run: what changed since it began must be seen by one more.
      this.collectAgain = true;
      return this.collecting;
    }
    const loop = async (): Promise<void> => {
      do {
        this.collectAgain = false;
        await this.collectNow().catch(() => undefined);
      } while (this.collectAgain);
    };
    this.collecting = loop().finally(() => {
      this.collecting = undefined;
    });
    return this.collecting;
  }

  private async collectNow(): Promise<void> {
    if (this.pulls.size > 0) return;
    if (this.budget === 0) this.budget = await defaultBudget(this.dir);
    if ((await this.usage()) <= this.budget) return;
    const used = new Set([...[...this.inUse.values()].map((i) => i.key), ...this.held.keys()]);
    const records = (await this.images()) as ImageRecord[];
    const unused = records.filter((r) => !used.has(r.key)).sort((a, b) => a.lastUsed - b.lastUsed);
    let keep = records;
    for (const victim of unused) {
      if (this.pulls.size > 0) return;
      await rm(join(this.dir, 'images', `${victim.key}.json`), { force: true });
      await rm(join(this.dir, 'oci', victim.key), { recursive: true, force: true });
      keep = keep.filter((r) => r.key !== victim.key);
      await this.sweep(keep);
      if ((await this.usage()) <= this.budget) return;
    }
  }

  /** Deletes layers and blobs that none of `keep` needs. */
  private async sweep(keep: readonly ImageRecord[]): Promise<void> {
    const blobs = new Set(keep.flatMap((r) => r.blobs.map((d) => d.slice('sha256:'.length))));
    // A mounted root keeps its layers even when its image was re-pulled (Pull=always).
    const mounted = [...this.inUse.values()].flatMap((i) => i.layers);
    const layers = new Set([...keep.flatMap((r) => r.layers), ...mounted]);
    for (const name of await readdir(join(this.blobs, 'sha256')).catch(() => [])) {
      if (!blobs.has(name)) await rm(join(this.blobs, 'sha256', name), { force: true });
    }
    for (const dir of await this.layerDirs()) {
      for (const name of await readdir(dir).catch(() => [])) {
        const hex = name.replace(/\.json$/, '');
        if (!layers.has(hex) && !name.includes('.tmp-')) {
          await rm(join(dir, name), { recursive: true, force: true });
        }
      }
    }
  }

  private async pull(
    key: string,
    from: string,
    name: string,
    onProgress?: (p: PullProgress) => void,
  ): Promise<LocalImage> {
    const layout = join(this.dir, 'oci', key);
    await mkdir(join(this.blobs, 'sha256'), { recursive: true });
    await mkdir(layout, { recursive: true });
    await mkdir(this.layersDir, { recursive: true });
    await mkdir(join(this.dir, 'images'), { recursive: true });
    const source = sourceOf(this.opts.registry, from.slice(0, from.indexOf('/')), from);
    const stopProgress = this.watchProgress(from, name, layout, onProgress);
    try {
      const args = [
        'copy',
        '--quiet',
        ...sourceFlags(this.opts.registry, source.registry, true),
        '--dest-shared-blob-dir',
        this.blobs,
        source.url,
        `oci:${layout}:${TAG}`,
      ];
      const run = await runSkopeo(
        this.opts.registry,
        args,
        this.opts.registry.copyTimeoutMs,
        64 * 1024,
      );
      if (run.timedOut) {
        throw new RegistryError(
          'unreachable',
          `${from}: the pull took over ${this.opts.registry.copyTimeoutMs} ms`,
        );
      }
      if (run.code !== 0) throw classifySkopeo(from, run.stderr);
    } finally {
      stopProgress();
    }
    const manifestDigest = await layoutManifest(layout, TAG);
    const manifest = await readManifest(this.blobs, manifestDigest);
    const config = await readConfig(this.blobs, manifest.config);
    for (const layer of manifest.layers) {
      await this.unpack(layer.digest, layer.mediaType, this.layersDir, this.opts.idMap);
    }
    const record: ImageRecord = {
      version: 1,
      key,
      reference: from,
      manifest: manifestDigest,
      config,
      layers: manifest.layers.map((l) => l.digest.slice('sha256:'.length)),
      blobs: [manifestDigest, manifest.config, ...manifest.layers.map((l) => l.digest)],
      lastUsed: Date.now(),
    };
    await this.writeRecord(record);
    return record;
  }

  /** Unpacks a layer into `into` unless it is there (one unpack of a layer at a time). */
  private async unpack(
    digest: string,
    mediaType: string,
    into: string,
    map: IdMap | undefined,
  ): Promise<void> {
    const hex = digest.slice('sha256:'.length);
    const dir = join(into, hex);
    if (await exists(join(into, `${hex}.json`))) return;
    let job = this.unpacks.get(dir);
    if (job === undefined) {
      job = (async () => {
        await rm(dir, { recursive: true, force: true });
        const result = await unpackLayer(blobPath(this.blobs, digest), mediaType, dir, map);
        await writeFile(join(into, `${hex}.json`), JSON.stringify({ bytes: result.bytes }));
      })().finally(() => this.unpacks.delete(dir));
      this.unpacks.set(dir, job);
    }
    await job;
  }

  /** Polls the bytes written for `from` and reports them; returns the stop. */
  private watchProgress(
    from: string,
    name: string,
    layout: string,
    onProgress?: (p: PullProgress) => void,
  ): () => void {
    if (onProgress === undefined) return () => undefined;
    let stopped = false;
    let total = 0;
    let reported = 0;
    let wanted: string[] = [];
    const registry = from.slice(0, from.indexOf('/'));
    const inspect = async (reference: string): Promise<ManifestDoc | undefined> => {
      const source = sourceOf(this.opts.registry, registry, reference);
      const args = [
        'inspect',
        '--raw',
        ...sourceFlags(this.opts.registry, source.registry, false),
        source.url,
      ];
      const run = await runSkopeo(
        this.opts.registry,
        args,
        this.opts.registry.inspectTimeoutMs,
        4 * 1024 * 1024,
      );
      return run.code === 0 ? (JSON.parse(run.stdout.toString('utf8')) as ManifestDoc) : undefined;
    };
    const manifestOf = async (): Promise<void> => {
      // The manifest's sizes give the total; failures only cost the total.
      let doc = await inspect(from);
      // A manifest list: the entry of this machine's platform, as skopeo copy picks it.
      const arch = process.arch === 'x64' ? 'amd64' : process.arch;
      const entry = doc?.manifests?.find(
        (m) => m.platform?.os === 'linux' && m.platform.architecture === arch,
      );
      if (entry?.digest !== undefined) {
        doc = await inspect(`${from.replace(/[:@][^/]*$/, '')}@${entry.digest}`);
      }
      if (doc === undefined) return;
      for (const l of doc.layers ?? []) {
        if (typeof l.digest === 'string' && typeof l.size === 'number') {
          total += l.size;
          wanted.push(l.digest.slice('sha256:'.length));
        }
      }
    };
    const tick = async (): Promise<void> => {
      let done = 0;
      for (const hex of wanted) {
        done += (await stat(join(this.blobs, 'sha256', hex)).catch(() => ({ size: 0 }))).size;
      }
      for (const dir of [layout, this.blobs]) {
        for (const f of await readdir(dir).catch(() => [])) {
          if (f.startsWith('oci-put-blob'))
            done += (await stat(join(dir, f)).catch(() => ({ size: 0 }))).size;
        }
      }
      // Ticks overlap and a blob is briefly neither temporary nor in place: never go back.
      reported = Math.max(reported, Math.min(done, total));
      if (!stopped) onProgress({ image: name, doneBytes: reported, totalBytes: total });
    };
    void manifestOf().catch(() => {
      wanted = [];
    });
    onProgress({ image: name, doneBytes: 0, totalBytes: 0 });
    const timer = setInterval(
      () => void tick().catch(() => undefined),
      this.opts.progressMs ?? 500,
    );
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }

  private async complete(rec: ImageRecord): Promise<boolean> {
    for (const hex of rec.layers) {
      if (!(await exists(join(this.layersDir, `${hex}.json`)))) return false;
    }
    return true;
  }

  private async touch(rec: ImageRecord): Promise<LocalImage> {
    const next = { ...rec, lastUsed: Date.now() };
    await this.writeRecord(next).catch(() => undefined);
    return next;
  }

  private async readRecord(key: string): Promise<ImageRecord | undefined> {
    try {
      const rec = JSON.parse(
        await readFile(join(this.dir, 'images', `${key}.json`), 'utf8'),
      ) as ImageRecord;
      return rec.version === 1 && Array.isArray(rec.layers) && Array.isArray(rec.blobs)
        ? rec
        : undefined;
    } catch {
      return undefined;
    }
  }

  private async writeRecord(rec: ImageRecord): Promise<void> {
    const path = join(this.dir, 'images', `${rec.key}.json`);
    await writeFile(`${path}.tmp`, JSON.stringify(rec));
    await rename(`${path}.tmp`, path);
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

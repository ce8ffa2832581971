/**
 * The parts of OCI image documents the store reads: an OCI layout's index, an image manifest
 * and an image config. Each is checked as it is read: a malformed document is an
 * `invalid-image` error, never a crash.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RegistryError } from '../../registry/errors.js';
import { isDigest } from '../../unit/image-ref.js';

/** Documents over this size are refused (real ones are a few KiB). */
const DOCUMENT_MAX_BYTES = 4 * 1024 * 1024;

/** A layer as a manifest lists it. */
export interface LayerRef {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
}

/** An image manifest: its config's digest and its layers, bottom first. */
export interface ImageManifest {
  readonly config: string;
  readonly layers: readonly LayerRef[];
}

/** What an image's config says about running it (OCI's `config` object). */
export interface ImageConfig {
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  /** `NAME=value` strings. */
  readonly env: readonly string[];
  readonly workingDir: string;
  readonly user: string;
}

function bad(what: string): RegistryError {
  return new RegistryError('invalid-image', `the image's ${what} is malformed`);
}

/** The blob `digest` in the blob directory `blobs` (`<blobs>/sha256/<hex>`). */
export function blobPath(blobs: string, digest: string): string {
  if (!isDigest(digest)) throw bad(`digest "${digest.slice(0, 80)}"`);
  return join(blobs, 'sha256', digest.slice('sha256:'.length));
}

async function readJson(path: string, what: string): Promise<Record<string, unknown>> {
  const text = await readFile(path, 'utf8').catch(() => {
    throw new RegistryError('invalid-image', `the image's ${what} is missing from the store`);
  });
  if (text.length > DOCUMENT_MAX_BYTES) throw bad(what);
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      return parsed as Record<string, unknown>;
    }
  } catch {
    // Reported below.
  }
  throw bad(what);
}

/** The manifest digest tagged `tag` in the OCI layout `layout`. */
export async function layoutManifest(layout: string, tag: string): Promise<string> {
  const index = await readJson(join(layout, 'index.json'), 'index');
  const manifests = Array.isArray(index['manifests']) ? (index['manifests'] as unknown[]) : [];
  for (const m of manifests) {
    const rec = (m ?? {}) as Record<string, unknown>;
    const ann = (rec['annotations'] ?? {}) as Record<string, unknown>;
    if (ann['org.opencontainers.image.ref.name'] === tag && typeof rec['digest'] === 'string') {
      return rec['digest'];
    }
  }
  throw bad('index');
}

/** The image manifest `digest` from `blobs`. */
export async function readManifest(blobs: string, digest: string): Promise<ImageManifest> {
  const doc = await readJson(blobPath(blobs, digest), 'manifest');
  const config = (doc['config'] ?? {}) as Record<string, unknown>;
  const layers = Array.isArray(doc['layers']) ? (doc['layers'] as unknown[]) : undefined;
  if (typeof config['digest'] !== 'string' || layers === undefined) throw bad('manifest');
  return {
    config: config['digest'],
    layers: layers.map((l) => {
      const rec = (l ?? {}) as Record<string, unknown>;
      const { digest: d, mediaType, size } = rec;
      if (typeof d !== 'string' || typeof mediaType !== 'string' || typeof size !== 'number') {
        throw bad('manifest');
      }
      blobPath(blobs, d);
      return { digest: d, mediaType, size };
    }),
  };
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/** The run settings of the config blob `digest`. */
export async function readConfig(blobs: string, digest: string): Promise<ImageConfig> {
  const doc = await readJson(blobPath(blobs, digest), 'config');
  const c = (doc['config'] ?? {}) as Record<string, unknown>;
  return {
    entrypoint: strings(c['Entrypoint']),
    cmd: strings(c['Cmd']),
    env: strings(c['Env']),
    workingDir: typeof c['WorkingDir'] === 'string' ? c['WorkingDir'] : '',
    user: typeof c['User'] === 'string' ? c['User'] : '',
  };
}

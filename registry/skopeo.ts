/**
 * skopeo, the one door to registries: resolving a reference to its digest (`inspect
 * --raw`) and copying an image into an OCI layout. Every run is bounded: a deadline, and a
 * cap on what is read from its output.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { RegistryError, classifySkopeo } from './errors.js';

/** How a daemon reaches registries; {@link REGISTRY_DEFAULTS} documents the defaults. */
export interface RegistryOptions {
  /** containers-auth.json or Docker config.json with credentials; none by default. */
  readonly authFile?: string;
  /** `HOST:PORT` of registries reached over plain HTTP (or TLS without verification). */
  readonly insecureRegistries: readonly string[];
  /**
   * Registry `HOST:PORT` -> where it is reached instead (`--registry-mirror FROM=TO`): image
   * names, and the digests pinned to them, keep FROM; lookups and pulls go to TO, whose own
   * entry in `insecureRegistries` decides plain HTTP. None by default.
   */
  readonly mirrors?: Readonly<Record<string, string>>;
  /**
   * `HOST[:PORT]` of the registries a submit may name in `Image=` (the scheduler's
   * `--allowed-registries`; `docker.io` for names without a host); others are refused before
   * any network call. Absent: any registry.
   */
  readonly allowedRegistries?: readonly string[];
  /** The skopeo binary. */
  readonly skopeo: string;
  /** Deadline of one inspect. */
  readonly inspectTimeoutMs: number;
  /** Deadline of one copy (a pull). */
  readonly copyTimeoutMs: number;
}

/** skopeo from PATH; no credentials; every registry over verified TLS; 30 s / 10 min. */
export const REGISTRY_DEFAULTS: RegistryOptions = {
  insecureRegistries: [],
  skopeo: 'skopeo',
  inspectTimeoutMs: 30_000,
  copyTimeoutMs: 600_000,
};

/** A manifest larger than this is refused (real ones are a few KiB). */
export const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;
/** Of skopeo's stderr, the tail kept for messages. */
const STDERR_MAX = 16 * 1024;

interface Run {
  readonly code: number | null;
  readonly stdout: Buffer;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** Runs skopeo with a deadline; stdout capped at `maxStdout` (then killed), stderr's tail kept. */
export function runSkopeo(
  opts: RegistryOptions,
  args: readonly string[],
  timeoutMs: number,
  maxStdout: number,
  signal?: AbortSignal,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(opts.skopeo, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let outBytes = 0;
    let err = '';
    let timedOut = false;
    const kill = (): void => {
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    signal?.addEventListener('abort', kill, { once: true });
    child.stdout.on('data', (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes > maxStdout) kill();
      else out.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      err = (err + chunk.toString('utf8')).slice(-STDERR_MAX);
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new RegistryError('failed', `skopeo cannot be run (${e.message}); install skopeo`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', kill);
      if (outBytes > maxStdout) err += `\noutput over ${maxStdout} bytes`;
      resolve({ code, stdout: Buffer.concat(out), stderr: err, timedOut });
    });
  });
}

/** True when `registry` (`host:port`) is named by --insecure-registry. */
export function isInsecure(opts: RegistryOptions, registry: string): boolean {
  return opts.insecureRegistries.includes(registry);
}

/**
 * Where skopeo fetches `reference` (`host/repo...`, of `registry`): the registry it names, or
 * the mirror {@link RegistryOptions.mirrors} gives for it. `registry` is then the mirror's,
 * for {@link sourceFlags}.
 */
export function sourceOf(
  opts: RegistryOptions,
  registry: string,
  reference: string,
): { registry: string; url: string } {
  const mirror = opts.mirrors?.[registry];
  if (mirror === undefined || !reference.startsWith(`${registry}/`)) {
    return { registry, url: `docker://${reference}` };
  }
  return { registry: mirror, url: `docker://${mirror}${reference.slice(registry.length)}` };
}

/** Auth and TLS flags of skopeo's source side (`inspect` uses the plain names). */
export function sourceFlags(opts: RegistryOptions, registry: string, copy: boolean): string[] {
  const prefix = copy ? '--src-' : '--';
  return [
    ...(opts.authFile !== undefined ? [`${prefix}authfile`, opts.authFile] : []),
    ...(isInsecure(opts, registry) ? [`${prefix}tls-verify=false`] : []),
  ];
}

/**
 * The raw manifest (list or image) that `reference` (`host/repo:tag` or `host/repo@digest`)
 * names, and its digest: the sha256 of exactly those bytes, what Docker and Swarm pin to.
 */
export async function inspectManifest(
  opts: RegistryOptions,
  registry: string,
  reference: string,
  signal?: AbortSignal,
): Promise<{ digest: string; manifest: Buffer }> {
  const source = sourceOf(opts, registry, reference);
  const args = ['inspect', '--raw', ...sourceFlags(opts, source.registry, false), source.url];
  const run = await runSkopeo(opts, args, opts.inspectTimeoutMs, MANIFEST_MAX_BYTES, signal);
  if (run.timedOut) {
    throw new RegistryError(
      'unreachable',
      `${reference}: the registry did not answer within ${opts.inspectTimeoutMs} ms`,
    );
  }
  if (run.code !== 0) throw classifySkopeo(reference, run.stderr);
  const digest = `sha256:${createHash('sha256').update(run.stdout).digest('hex')}`;
  return { digest, manifest: run.stdout };
}

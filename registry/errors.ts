/**
 * Registry failures, classified once at the boundary (skopeo's stderr) into codes a caller
 * branches on: a submit refuses the unit with the registry's reason, an agent fails the unit
 * with it and retries with back-off.
 */

import { clip } from '../lib/clip.js';

export type RegistryErrorCode =
  /** The repository, tag or digest does not exist in the registry. */
  | 'not-found'
  /** The registry refused the credentials (or asked for some). */
  | 'unauthorized'
  /** The registry could not be reached (refused, DNS, timeout, TLS to a plain-HTTP registry). */
  | 'unreachable'
  /** The disk holding the image store is full. */
  | 'disk-full'
  /** The image is not usable (bad digest, unsupported layer, unsafe layer). */
  | 'invalid-image'
  /** skopeo or tar failed otherwise, or is not installed. */
  | 'failed';

/** At most this many characters of a tool's message are kept. */
export const REGISTRY_MESSAGE_MAX = 400;

/** A failure to resolve, pull or unpack an image; the message is for people. */
export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  readonly code: RegistryErrorCode;
  /**
   * The message without what the registry host itself answered: what an API may tell its
   * callers, who must not be able to read arbitrary hosts' responses through a submit.
   */
  readonly brief: string;

  constructor(code: RegistryErrorCode, message: string, brief?: string) {
    super(clip(message, REGISTRY_MESSAGE_MAX));
    this.code = code;
    this.brief = clip(brief ?? message, REGISTRY_MESSAGE_MAX);
  }
}

export function isRegistryError(err: unknown): err is RegistryError {
  return err instanceof RegistryError;
}

/**
 * Patterns of skopeo's (containers/image's) messages, most specific first. A local failure
 * comes first, and HTTP status codes must stand as numbers of their own: the message names
 * local paths, whose hex and digits hold "403" or "404" often enough.
 */
const PATTERNS: readonly (readonly [RegExp, RegistryErrorCode, string])[] = [
  [/no space left on device/i, 'disk-full', "the image store's disk is full"],
  [/manifest unknown|name unknown|not found|\b404\b/i, 'not-found', 'not found in the registry'],
  [
    /unauthorized|authentication required|\bdenied:|access to the resource is denied|\b40[13]\b/i,
    'unauthorized',
    'the registry refused the credentials (see --registry-auth-file)',
  ],
  [
    /server gave HTTP response to HTTPS client/i,
    'unreachable',
    'the registry speaks plain HTTP: name it with --insecure-registry HOST:PORT',
  ],
  [
    /connection refused|no such host|i\/o timeout|network is unreachable|deadline exceeded|connection reset|EOF|timeout/i,
    'unreachable',
    'the registry cannot be reached',
  ],
  [
    /digest did not match|manifest digest .* does not match|Digest did not match/i,
    'invalid-image',
    'the registry sent content that does not match its digest',
  ],
];

/** The last meaningful line of skopeo's stderr, without its `time=... level=fatal msg=` frame. */
export function skopeoMessage(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const last = lines.at(-1) ?? '';
  const msg = /msg="((?:[^"\\]|\\.)*)"/.exec(last)?.[1] ?? last;
  return msg.replace(/\\"/g, '"').slice(0, REGISTRY_MESSAGE_MAX);
}

/** Classifies a failed skopeo run on `what` (e.g. `127.0.0.1:5000/app:1`). */
export function classifySkopeo(what: string, stderr: string): RegistryError {
  const detail = skopeoMessage(stderr);
  for (const [pattern, code, words] of PATTERNS) {
    if (pattern.test(detail)) {
      return new RegistryError(code, `${what}: ${words} (${detail})`, `${what}: ${words}`);
    }
  }
  return new RegistryError(
    'failed',
    `${what}: ${detail || 'skopeo failed'}`,
    `${what}: the registry's answer was not understood (skopeo inspect on the scheduler's host shows it)`,
  );
}

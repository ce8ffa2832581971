/**
 * OCI image references as Docker and podman write them: `[host[:port]/]path[:tag][@digest]`.
 * A reference without a host is Docker Hub's (`busybox` is `docker.io/library/busybox`), a
 * reference without tag or digest means `:latest`. Pure: no I/O.
 */

/** A parsed image reference. */
export interface ImageReference {
  /** Registry host, with port when given (`127.0.0.1:5000`); `docker.io` when none was. */
  readonly registry: string;
  /** Repository path inside the registry (`examples/busybox`, `library/busybox`). */
  readonly repository: string;
  /** Tag; empty when the reference has only a digest. */
  readonly tag: string;
  /** `sha256:<64 hex>`; empty when not pinned. */
  readonly digest: string;
}

/** References longer than this are refused (Docker's own limit is 255 for the name part). */
export const IMAGE_REF_MAX = 512;

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/** True for `sha256:<64 lowercase hex>`, the only digest form Flotilla pins to. */
export function isDigest(text: string): boolean {
  return DIGEST.test(text);
}

/**
 * Parses `text`; returns the reference, or a sentence saying what is wrong with it (for a
 * `UnitError` or an API error). Docker's rules: lowercase path components, a tag of at most
 * 128 of `[A-Za-z0-9_.-]`, a sha256 digest.
 */
export function parseImageReference(text: string): ImageReference | string {
  if (text === '') return 'the image reference is empty';
  if (text.length > IMAGE_REF_MAX) return `the image reference is over ${IMAGE_REF_MAX} characters`;
  if (/\s/.test(text)) return 'an image reference may not contain spaces';
  let rest = text;
  let digest = '';
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest))
      return `the digest "${digest}" is not sha256: and 64 lowercase hex digits`;
  }
  let registry = '';
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (
      first.includes('.') ||
      first.includes(':') ||
      first === 'localhost' ||
      first !== first.toLowerCase()
    ) {
      registry = first;
      rest = rest.slice(slash + 1);
      if (!HOST.test(registry))
        return `the registry "${registry}" is not a host name with an optional :port`;
    }
  }
  let tag = '';
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag))
      return `the tag "${tag}" may only hold letters, digits, "_", "." and "-" (at most 128, not starting with "." or "-")`;
  }
  if (rest === '') return 'the image reference has no repository name';
  for (const part of rest.split('/')) {
    if (!COMPONENT.test(part)) {
      return `the repository "${rest}" must be lowercase letters and digits, separated by "/", ".", "_" or "-"`;
    }
  }
  if (registry === '') {
    registry = 'docker.io';
    if (!rest.includes('/')) rest = `library/${rest}`;
  }
  if (tag === '' && digest === '') tag = 'latest';
  return { registry, repository: rest, tag, digest };
}

/** `host/repo[:tag][@digest]`: the canonical text of a reference. */
export function formatImageReference(ref: ImageReference): string {
  const tag = ref.tag !== '' ? `:${ref.tag}` : '';
  const digest = ref.digest !== '' ? `@${ref.digest}` : '';
  return `${ref.registry}/${ref.repository}${tag}${digest}`;
}

/** The reference skopeo fetches: by digest when pinned, else by tag (`host/repo@sha256:...`). */
export function transportReference(ref: ImageReference): string {
  const base = `${ref.registry}/${ref.repository}`;
  return ref.digest !== '' ? `${base}@${ref.digest}` : `${base}:${ref.tag}`;
}

/** `web:1.4` for messages: the last path component and the tag (or a short digest). */
export function shortImageName(ref: ImageReference): string {
  const name = ref.repository.split('/').at(-1) ?? ref.repository;
  if (ref.tag !== '') return `${name}:${ref.tag}`;
  return `${name}@${ref.digest.slice(0, 19)}`;
}

/**
 * `text` with its `Image=` line (1-based `line`, holding `from`) now saying `to`; undefined
 * when that line is not a plain `Image=from` line (a continued line cannot be rewritten).
 */
export function rewriteImageLine(
  text: string,
  line: number,
  from: string,
  to: string,
): string | undefined {
  const lines = text.split('\n');
  const at = lines[line - 1];
  if (at === undefined) return undefined;
  const m = /^(\s*Image\s*=\s*)(.*?)(\s*)$/.exec(at);
  if (m === null || m[2] !== from) return undefined;
  lines[line - 1] = `${m[1] ?? ''}${to}${m[3] ?? ''}`;
  return lines.join('\n');
}

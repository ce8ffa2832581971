/**
 * Failures of the image store's own work on this machine: unpacking a layer (GNU tar and the
 * tools that turn OCI whiteouts into overlay's) and mounting an image's overlay root. They
 * are not registry failures (an unreachable registry, refused credentials, an unknown tag:
 * those stay RegistryError, registry/errors.ts); the agent fails the unit with the message
 * and retries with back-off either way.
 */

import { clip } from '../../lib/clip.js';

/** Stable codes: callers branch on these, never on the message text. */
export type ImageStoreErrorCode =
  /** The image cannot be used here (a layer tar refuses, too many layers for one mount). */
  | 'invalid-image'
  /** The disk holding the image store is full. */
  | 'disk-full'
  /** A host tool (mount, mknod, setfattr) failed otherwise. */
  | 'failed';

/** At most this many characters of a message are kept (as for RegistryError). */
export const IMAGE_STORE_MESSAGE_MAX = 400;

/** A failure to unpack or mount an image on this machine; the message is for people. */
export class ImageStoreError extends Error {
  override readonly name = 'ImageStoreError';
  readonly code: ImageStoreErrorCode;

  constructor(code: ImageStoreErrorCode, message: string) {
    super(clip(message, IMAGE_STORE_MESSAGE_MAX));
    this.code = code;
  }
}

export function isImageStoreError(err: unknown): err is ImageStoreError {
  return err instanceof ImageStoreError;
}

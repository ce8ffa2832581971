/**
 * {@link CliError}, flotctl's one error type, apart from errors.ts (which words gRPC failures
 * and so loads gRPC): main.ts tells a CliError from an internal error without loading either.
 */
import type { status } from '@grpc/grpc-js';

/** Stable codes of {@link CliError}. */
export type CliErrorCode =
  /** The API cannot be reached at all. */
  | 'unreachable'
  /** The TLS handshake failed: an untrusted certificate, no client certificate, TLS on one side only. */
  | 'tls'
  /** The API did not answer within the request timeout. */
  | 'deadline'
  /** The API answered UNAVAILABLE (usually: etcd is down). */
  | 'unavailable'
  /** The API refused the request (bad file, unknown unit, template, ...). */
  | 'refused'
  /** A unit cannot be placed, failed, or did not reach its state in time. */
  | 'unit-failed'
  | 'timeout'
  /** A local file cannot be read. */
  | 'file'
  /** Unit files over the API's size limits, or a request larger than the API reads. */
  | 'too-large'
  | 'internal';

/** A failure of one flotctl command; the message is what the user sees. */
export class CliError extends Error {
  override readonly name = 'CliError';

  constructor(
    readonly code: CliErrorCode,
    message: string,
    /** The gRPC status, when the failure came from the API. */
    readonly grpcCode?: status,
  ) {
    super(message);
  }
}

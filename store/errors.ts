/**
 * The store's one error type. Everything that leaves store/ is a StoreError with a stable
 * `code`; foreign errors (etcd3, gRPC) are translated once, by {@link toStoreError}, at the
 * boundary where store/ calls the etcd3 client.
 */
import {
  ClientClosedError,
  EtcdLeaseInvalidError,
  GRPCCancelledError,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
} from 'etcd3';
import { etcdTlsProblem } from './tls.js';

/**
 * Why a store call failed:
 * - `unavailable`: etcd could not be reached or has no leader; retry later.
 * - `deadline`: the call's deadline passed (etcd slow or partitioned); retry later.
 * - `compacted`: the revision asked for is compacted away; re-list.
 * - `fenced`: a fenced write's election key is gone or belongs to another term; nothing was
 *   written and this process is no longer leader.
 * - `conflict`: a guard of an atomic write did not hold (key exists, changed meanwhile).
 * - `not-found`: the key or record does not exist.
 * - `lease-lost`: the lease named in a write is expired or revoked.
 * - `corrupt`: a stored value does not decode as the record its key implies.
 * - `invalid`: the request is malformed (bad key segment, too many ops, duplicate key).
 * - `too-large`: a request or response exceeds etcd's or gRPC's size limit; send or ask for
 *   less at once (fewer or smaller units per request, smaller pages).
 * - `no-space`: etcd raised its NOSPACE alarm (its database reached --quota-backend-bytes)
 *   and refuses writes until an operator frees space and disarms the alarm; reads work.
 * - `closed`: the store was closed.
 * - `internal`: anything else; a bug or an etcd error store/ does not know.
 */
export type StoreErrorCode =
  | 'unavailable'
  | 'deadline'
  | 'compacted'
  | 'fenced'
  | 'conflict'
  | 'not-found'
  | 'lease-lost'
  | 'corrupt'
  | 'invalid'
  | 'too-large'
  | 'no-space'
  | 'closed'
  | 'internal';

/** Details a StoreError may carry. */
export interface StoreErrorDetails {
  /** The key involved, when one is. */
  key?: string;
  /** The original error, kept for logs. */
  cause?: unknown;
}

/** A failed store operation. Match on `code`, never on `message`. */
export class StoreError extends Error {
  readonly code: StoreErrorCode;
  readonly key: string | undefined;

  constructor(code: StoreErrorCode, message: string, details: StoreErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'StoreError';
    this.code = code;
    this.key = details.key;
  }
}

/** True for errors that may succeed if the same call is simply tried again later. */
export function isRetryable(err: unknown): boolean {
  return err instanceof StoreError && (err.code === 'unavailable' || err.code === 'deadline');
}

/** True when `err` is a StoreError with the given code. */
export function isStoreError(err: unknown, code?: StoreErrorCode): err is StoreError {
  return err instanceof StoreError && (code === undefined || err.code === code);
}

/** etcd server messages (substrings) and the code each means. Order matters: first wins. */
const MESSAGE_CODES: ReadonlyArray<readonly [string, StoreErrorCode]> = [
  ['required revision has been compacted', 'compacted'],
  ['requested lease not found', 'lease-lost'],
  ['too many operations in txn request', 'invalid'],
  ['duplicate key given in txn request', 'invalid'],
  ['key is not provided', 'invalid'],
  ['request timed out', 'deadline'],
  ['deadline exceeded', 'deadline'],
  ['no leader', 'unavailable'],
  ['leader changed', 'unavailable'],
  ['not capable', 'unavailable'],
  ['too many requests', 'unavailable'],
  // An etcd that shuts down (or restarts) may reset its streams instead of closing them:
  // grpc-js then says INTERNAL, but it is the connection going away.
  ['rst_stream', 'unavailable'],
  ['stream removed', 'unavailable'],
];

/**
 * etcd's refusals of an over-large request: its own check against --max-request-bytes, and its
 * (Go) gRPC server's against the message size it accepts, that limit plus 512 KiB. Not
 * grpc-js's "Received message larger than max": that is this client refusing an answer.
 */
function isTooLarge(message: string): boolean {
  return (
    message.includes('etcdserver: request is too large') ||
    message.includes('grpc: received message larger than max')
  );
}

/** gRPC status codes that appear on raw (untranslated) errors. */
const GRPC_CODES: ReadonlyMap<number, StoreErrorCode> = new Map([
  [1, 'unavailable'], // CANCELLED: the channel was torn down under the call
  [4, 'deadline'],
  [5, 'not-found'],
  [8, 'too-large'], // RESOURCE_EXHAUSTED: a message over the size limit
  [11, 'compacted'], // OUT_OF_RANGE: etcd's code for compacted revisions
  [14, 'unavailable'],
]);

/**
 * Translates any error thrown by the etcd3 client (or gRPC underneath it) into a StoreError.
 * Idempotent: a StoreError passes through unchanged. `key` names the key the call was about.
 */
export function toStoreError(err: unknown, key?: string): StoreError {
  if (err instanceof StoreError) return err;
  const details: StoreErrorDetails = key === undefined ? { cause: err } : { cause: err, key };
  const message = err instanceof Error ? err.message : String(err);
  const where = key === undefined ? '' : ` (key ${key})`;
  const make = (code: StoreErrorCode): StoreError => {
    // A failed TLS handshake says why in OpenSSL's words, deep in gRPC's: say it plainly.
    const text = (code === 'unavailable' && etcdTlsProblem(message)) || message;
    return new StoreError(code, `etcd ${code}${where}: ${text}`, details);
  };

  if (err instanceof ClientClosedError) return make('closed');
  if (isTooLarge(message)) {
    // Callers check their own limits first; this catches what slips past them (many instance
    // records, each a copy of a large template), so it says what to do, not etcd's words.
    return new StoreError(
      'too-large',
      `etcd refused the write as too large${where}: one request may be at most etcd's --max-request-bytes (1.5 MiB by default); change fewer or smaller units at once`,
      details,
    );
  }
  if (message.includes('database space exceeded')) {
    // etcd's RESOURCE_EXHAUSTED with its own words: say what it means and what to do.
    return new StoreError(
      'no-space',
      `etcd is out of space${where}: its database reached --quota-backend-bytes and it refuses writes (NOSPACE alarm) until an operator compacts, defragments every member and runs "etcdctl alarm disarm" (docs/operations.md)`,
      details,
    );
  }
  if (err instanceof EtcdLeaseInvalidError) return make('lease-lost');
  const lower = message.toLowerCase();
  for (const [needle, code] of MESSAGE_CODES) {
    if (lower.includes(needle)) return make(code);
  }
  if (err instanceof GRPCUnavailableError || err instanceof GRPCCancelledError) {
    return make('unavailable');
  }
  if (err instanceof GRPCDeadlineExceededError) return make('deadline');
  const grpcCode = (err as { code?: unknown } | null)?.code;
  if (typeof grpcCode === 'number') {
    const code = GRPC_CODES.get(grpcCode);
    if (code !== undefined) return make(code);
  }
  if (lower.includes('econnrefused') || lower.includes('no connection established')) {
    return make('unavailable');
  }
  return make('internal');
}

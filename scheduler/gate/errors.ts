/**
 * The API's one error type and the one place where errors become gRPC statuses. Handlers
 * throw {@link ApiError} for what they decide themselves, and let UnitError and StoreError
 * through; {@link toGrpcStatus} translates all three (and anything else, as INTERNAL) once, at
 * the boundary (interceptors.ts), so every handler answers with the same codes and
 * wording. The handlers above the gate throw through it.
 */
import { Metadata, status, type ServerErrorResponse } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { ConflictError, StoreError } from '../../store/index.js';
import { excerpt, UNIT_NAME_MAX, UnitError } from '../../unit/index.js';

/** Stable codes of {@link ApiError}; each maps to exactly one gRPC status. */
export type ApiErrorCode =
  | 'invalid-argument'
  | 'not-found'
  | 'already-exists'
  | 'failed-precondition'
  | 'aborted'
  | 'out-of-range'
  | 'resource-exhausted'
  | 'unavailable'
  | 'permission-denied'
  | 'unauthenticated'
  | 'internal';

const GRPC_STATUS: Readonly<Record<ApiErrorCode, status>> = {
  'invalid-argument': status.INVALID_ARGUMENT,
  'not-found': status.NOT_FOUND,
  'already-exists': status.ALREADY_EXISTS,
  'failed-precondition': status.FAILED_PRECONDITION,
  aborted: status.ABORTED,
  'out-of-range': status.OUT_OF_RANGE,
  'resource-exhausted': status.RESOURCE_EXHAUSTED,
  unavailable: status.UNAVAILABLE,
  'permission-denied': status.PERMISSION_DENIED,
  unauthenticated: status.UNAUTHENTICATED,
  internal: status.INTERNAL,
};

/** A request the API refuses, with a message a person can act on. Match on `code`. */
export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(
    readonly code: ApiErrorCode,
    message: string,
    /** Unit-file problems, each where its file has it (HTTP answers them as a list). */
    readonly problems?: readonly UnitProblem[],
    /** For a busy server: when to try again, also sent as the `retry-after-ms` trailer. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }

  /** The gRPC status this error is sent as. */
  get grpcStatus(): status {
    return GRPC_STATUS[this.code];
  }
}

/** `web@.service:12: message`, or `web@.service: message` when the problem has no line. */
export function formatUnitError(err: UnitError, file?: string): string {
  // The name comes from the request unchecked: it may be invalid, and megabytes long.
  const name = excerpt(err.file ?? file ?? '', UNIT_NAME_MAX);
  const where = err.line > 0 ? `${name}:${err.line}` : name;
  return where === '' ? err.message : `${where}: ${err.message}`;
}

/** A unit file's problem: the file, its 1-based line (0: not on one line), what is wrong. */
export interface UnitProblem {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

/** At most this many problems are carried as a list (the message has them all). */
const MAX_PROBLEMS = 1_000;

/** INVALID_ARGUMENT listing every problem, one per line, each naming its file and line. */
export function invalidUnits(errors: readonly UnitError[]): ApiError {
  const problems = errors.slice(0, MAX_PROBLEMS).map((e) => ({
    file: excerpt(e.file ?? '', UNIT_NAME_MAX),
    line: e.line,
    message: excerpt(e.message, 1000),
  }));
  return new ApiError(
    'invalid-argument',
    errors.map((e) => formatUnitError(e)).join('\n'),
    problems,
  );
}

/** What the boundary needs to word errors: where etcd is, so UNAVAILABLE can say so. */
export interface ErrorContext {
  readonly endpoints: readonly string[];
}

/** A status to send: the gRPC code and the message. */
export interface GrpcStatus {
  readonly code: status;
  readonly details: string;
  /** When a busy server asks to be tried again: the `retry-after-ms` trailer. */
  readonly retryAfterMs?: number;
}

/** The trailer a busy server's RESOURCE_EXHAUSTED carries: when to try again, in ms. */
export const RETRY_AFTER_METADATA = 'retry-after-ms';

/**
 * The one translation of any thrown value into a gRPC status:
 * ApiError by its code; UnitError -> INVALID_ARGUMENT (`file:line: msg`); StoreError
 * unavailable/deadline/closed -> UNAVAILABLE naming etcd's endpoints, conflict -> ABORTED,
 * compacted -> OUT_OF_RANGE, not-found -> NOT_FOUND, invalid -> INVALID_ARGUMENT; the rest
 * INTERNAL.
 */
export function toGrpcStatus(err: unknown, ctx: ErrorContext): GrpcStatus {
  if (err instanceof ApiError) {
    return err.retryAfterMs === undefined
      ? { code: err.grpcStatus, details: err.message }
      : { code: err.grpcStatus, details: err.message, retryAfterMs: err.retryAfterMs };
  }
  if (err instanceof UnitError) {
    return { code: status.INVALID_ARGUMENT, details: formatUnitError(err) };
  }
  if (err instanceof StoreError) return storeStatus(err, ctx);
  const message = err instanceof Error ? err.message : String(err);
  return { code: status.INTERNAL, details: `internal error: ${message}` };
}

function storeStatus(err: StoreError, ctx: ErrorContext): GrpcStatus {
  switch (err.code) {
    case 'unavailable':
    case 'deadline':
    case 'lease-lost':
      return {
        code: status.UNAVAILABLE,
        details: `etcd at ${ctx.endpoints.join(',')} is unreachable: check that etcd runs (${err.message})`,
      };
    case 'closed':
      return { code: status.UNAVAILABLE, details: 'the API server is shutting down' };
    case 'conflict': {
      const keys = err instanceof ConflictError ? err.conflicts.map((c) => c.key) : [];
      const what = keys.length > 0 ? keys.join(', ') : 'records';
      return {
        code: status.ABORTED,
        details: `${what} changed while this request was applied; try again`,
      };
    }
    case 'compacted':
      return { code: status.OUT_OF_RANGE, details: err.message };
    case 'not-found':
      return { code: status.NOT_FOUND, details: err.message };
    case 'invalid':
    case 'too-large':
      return { code: status.INVALID_ARGUMENT, details: err.message };
    case 'fenced':
    case 'no-space':
      return { code: status.FAILED_PRECONDITION, details: err.message };
    default:
      return { code: status.INTERNAL, details: `internal error: ${err.message}` };
  }
}

/** A grpc-js error response carrying `s`, its message bounded by {@link boundDetails}. */
export function toServiceError(s: GrpcStatus): ServerErrorResponse {
  const details = boundDetails(s.details);
  if (s.retryAfterMs === undefined)
    return Object.assign(new Error(details), { code: s.code, details });
  const metadata = new Metadata();
  metadata.set(RETRY_AFTER_METADATA, String(Math.ceil(s.retryAfterMs)));
  return Object.assign(new Error(details), { code: s.code, details, metadata });
}

/**
 * The most a status message may take once grpc-js has percent-encoded it (`encodeURI`) into
 * the `grpc-message` trailer. A client drops a header block over 64 KiB, and a call whose
 * trailers are dropped does not fail: it waits for its deadline, so an over-long message looks
 * like a server that hangs. Half of that leaves room for the other trailers.
 */
export const MAX_STATUS_DETAILS = 32 * 1024;

/** Room kept for the line saying what was left out. */
const NOTE_ROOM = 200;

/**
 * `details` made safe to send: lone surrogates (which make `encodeURI`, and so grpc-js,
 * throw) replaced, and when its encoded form is over {@link MAX_STATUS_DETAILS}, cut after
 * the last whole line that fits, with a line saying how much was left out.
 */
export function boundDetails(details: string): string {
  const text = details.replace(LONE_SURROGATE, '\uFFFD');
  if (text.length * 9 <= MAX_STATUS_DETAILS || encodedLength(text) <= MAX_STATUS_DETAILS) {
    return text;
  }
  const lines = text.split('\n');
  const kept: string[] = [];
  let used = 0;
  for (const line of lines) {
    used += encodedLength(line) + 3; // and its "\n", sent as %0A
    if (used > MAX_STATUS_DETAILS - NOTE_ROOM) break;
    kept.push(line);
  }
  // One line longer than the whole budget: show its start.
  if (kept.length === 0) kept.push(excerpt(lines[0] ?? '', 1000));
  const left = lines.length - kept.length;
  return `${kept.join('\n')}\n…(${left} more lines not shown; ${Buffer.byteLength(text)} bytes in all)`;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
/** What `encodeURI` leaves as it is; every other ASCII character becomes `%XX`. */
const URI_KEPT = /[A-Za-z0-9;,/?:@&=+$\-_.!~*'()#]/;

/** `encodeURI(s).length`, without building it. */
function encodedLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += URI_KEPT.test(s[i] ?? '') ? 1 : 3;
    else if (c < 0x800) n += 6;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 12; // a surrogate pair: 4 UTF-8 bytes
      i++;
    } else n += 9;
  }
  return n;
}

/** Logs a failed call: INTERNAL as an error, UNAVAILABLE as a warning, the rest at debug. */
export function logFailure(logger: Logger, method: string, s: GrpcStatus, err: unknown): void {
  const fields = { method, code: status[s.code], err };
  if (s.code === status.INTERNAL) logger.error(fields, 'API call failed');
  else if (s.code === status.UNAVAILABLE) logger.warn(fields, 'API call failed');
  else logger.debug(fields, 'API call refused');
}
